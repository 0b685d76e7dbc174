"""Run one notebook as `nbdev_test` does (its small configuration, the `tst_flags` cells skipped) and write what each
code cell displayed to a JSON file, so that tests/test_notebooks.py can compare it with the outputs saved in the
notebook. Usage: `python tests/run_notebook.py nbs/14_asr.ipynb OUT.json`; exit status 1 when a cell fails."""
import json, os, sys, time
from pathlib import Path

def summarise(outputs) -> list:
    "Each output as {kind, text}: kind is 'figure', 'table', 'markdown', 'text', 'stderr' or 'error'; text is what a reader sees."
    out = []
    for o in outputs or []:
        o = dict(o)
        ot = o.get('output_type')
        if ot == 'stream':
            out.append(dict(kind='stderr' if o.get('name') == 'stderr' else 'text', text=''.join(o.get('text', ''))))
        elif ot == 'error':
            out.append(dict(kind='error', text=f"{o.get('ename')}: {o.get('evalue')}"))
        elif ot in ('execute_result', 'display_data'):
            d = dict(o.get('data', {}))
            j = lambda k: ''.join(d[k]) if isinstance(d[k], list) else str(d[k])
            if 'image/png' in d or 'image/svg+xml' in d: out.append(dict(kind='figure', text=j('text/plain') if 'text/plain' in d else ''))
            elif 'text/html' in d and '<table' in j('text/html'): out.append(dict(kind='table', text=j('text/html')))
            elif 'text/markdown' in d: out.append(dict(kind='markdown', text=j('text/markdown')))
            elif 'text/plain' in d: out.append(dict(kind='text', text=j('text/plain')))
    return out

def run(fn:Path, dest:Path) -> bool:
    from fastcore.basics import str2bool
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import NBProcessor, nb_lang
    from nbdev.frontmatter import FrontmatterProc
    from execnb.shell import CaptureShell
    os.environ['IN_TEST'] = '1'
    flags = set(get_config().tst_flags.split('|')) if get_config().get('tst_flags') else set()
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb
    fm = getattr(nb, 'frontmatter_', {})
    skipped = str2bool(fm.get('skip_exec', False)) or nb_lang(nb) != 'python'
    def _no_eval(cell):   # nbdev.test.test_nb's rule
        if cell.cell_type != 'code': return True
        if 'nbdev_export' + '(' in cell.source: return True
        direc = getattr(cell, 'directives_', {}) or {}
        if direc.get('eval:', [''])[0].lower() == 'false': return True
        return flags & direc.keys()
    for c in nb.cells:   # execnb keeps a cell's saved outputs when it shows nothing now: clear them, or a lost figure goes unseen
        if c.cell_type == 'code': c.outputs = []
    k, ok, t0 = CaptureShell(fn), True, time.time()
    ran = set()
    if not skipped:
        try:
            with working_directory(fn.parent):
                k.run_all(nb, exc_stop=True, preproc=_no_eval, postproc=lambda c: ran.add(c.get('id')))
        except Exception:
            sys.stderr.write(k.prettytb(fname=fn) + '\n'); ok = False
    cells = {c.get('id'): dict(ran=c.get('id') in ran, outputs=summarise(c.get('outputs')))
             for c in nb.cells if c.cell_type == 'code'}
    dest.write_text(json.dumps(dict(ok=ok, seconds=round(time.time() - t0, 1), cells=cells)))
    return ok

if __name__ == '__main__':
    sys.exit(0 if run(Path(sys.argv[1]).resolve(), Path(sys.argv[2])) else 1)
