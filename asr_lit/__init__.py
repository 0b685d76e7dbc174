__version__ = "0.1.0"
from . import methods as _methods   # writes every built-in method into the engine's registry (19_methods), whatever is imported first
