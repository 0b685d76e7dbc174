"""nbdev notebook processing for the documentation site: `show_doc` entries rendered, saved outputs kept.

Hand-written (not exported from a notebook). `settings.ini` names it: `skip_procs` leaves out nbdev's
`exec_show_docs` and the processors after it, and `procs` puts them back in nbdev's order with
`exec_show_docs_saved` in place of `exec_show_docs` (nbdev appends `procs` after the base processors, so the
ones that follow must be listed again to keep their order). `nbdev_docs`, `nbdev_preview` and `nbdev_readme`
all process the notebooks through it.

Why: to render `show_doc`, nbdev runs the exported cells, the `show_doc` cells, the import cells and also
every cell that mixes imports with other code (its warning "Found cells containing imports and other code"),
replacing that cell's saved output with a fresh run. Here those cells load pretrained models, prune and repair
them: `nbdev_docs` then runs parts of experiments for minutes, and fails where such a cell needs a variable
that a plain code cell (which nbdev does not run) defined. `exec_show_docs_saved` does not run those mixed
cells, so every page shows the outputs saved in its notebook. nbdev's own advice (imports in a cell of their
own) would do the same; this keeps the notebooks as they are.
"""

import ast

from nbdev.processors import exec_show_docs

__all__ = ["exec_show_docs_saved", "is_mixed_import_cell"]

_SHOW_DIRS = {"export", "exports", "exporti", "exec_doc"}


def is_mixed_import_cell(cell) -> bool:
    "True for a code cell that nbdev would run for `show_doc` only because it mixes imports with other code."
    if cell.get("cell_type") != "code" or not cell.get("source"):
        return False
    if cell.directives_.keys() & _SHOW_DIRS:
        return False
    try:
        trees = cell.parsed_()
    except Exception:
        return False
    if not trees:
        return False
    nodes = [n for t in trees for n in ast.walk(t)]
    has_import = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes)
    return has_import and any(isinstance(n, (ast.Expr, ast.Assign)) for n in nodes)


class exec_show_docs_saved(exec_show_docs):
    "nbdev's `exec_show_docs`, less the cells that mix imports with other code: their saved outputs stay."

    def __call__(self, cell):
        if is_mixed_import_cell(cell):
            return
        return super().__call__(cell)
