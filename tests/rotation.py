"""What rotates from commit to commit in the tests (the rows of the committed results rerun, the hypothesis seed):
a key from the commit's hash, or today's date where there is no git checkout. pytest prints both in its header."""
import datetime, hashlib, os, subprocess
from pathlib import Path

def commit_key() -> str:
    "The commit's hash (`git rev-parse HEAD`), or today's date where there is no git checkout."
    try:
        return subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=Path(__file__).parent, capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError): return datetime.date.today().isoformat()

def pick(n:int, key:str, salt:str='') -> int:
    "A number in [0, n) drawn from `key` (and `salt`): another for each commit, uniform as commits go by."
    return int(hashlib.sha256((salt + key).encode()).hexdigest()[:12], 16) % n

def props_seed() -> int:
    "The hypothesis seed: `ASR_LIT_PROPS_SEED`, else drawn from the commit."
    if os.environ.get('ASR_LIT_PROPS_SEED'): return int(os.environ['ASR_LIT_PROPS_SEED'])
    return pick(2**32, commit_key(), 'hypothesis')
