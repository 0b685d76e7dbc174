"""Every notebook runs, top to bottom, in its small configuration (as `nbdev_test` runs it: tests/run_notebook.py), in
a fresh process; and the outputs saved in it (which the documentation shows) are checked against that run: every
figure and table saved in a cell that ran is produced by it again, and the designated cells, whose output does not
depend on the configuration, print exactly what is saved."""
import json, os, subprocess, sys, tempfile
from collections import Counter
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))
# (notebook, cell id): saved figures or tables the small configuration does not make, and why
NOT_IN_SMALL = {('20_sweep.ipynb', '9681d36f'): 'the small sweep has no 2:4 or channel rows',
                ('16_residual.ipynb', '4f2a2441'): 'the accuracy-vs-sparsity figure of the small pair is drawn for the full grid only',
                ('16_residual.ipynb', 'c1e0c006'): 'the accuracy-vs-sparsity figure of the larger pair is drawn for the full grid only'}
# (notebook, cell id): cells whose saved output must equal a fresh run's, character for character
SAME_OUTPUT = {('20_sweep.ipynb', 'd4f7a2c8'): 'the findings, written from the committed nbs/sweep_results.csv',
               ('index.ipynb', 'f0a1b2c4'): "the demo's repair time, from the committed sweep",
               ('index.ipynb', 'f0a1b2c5'): 'the sweep paragraph, from the committed sweep',
               ('15_ablations.ipynb', '4b54b038'): "VGG-16-BN: ASR reduces to BN recalibration (the engine's warning)"}
SHOWN = ('figure', 'table')

def test_notebooks_found():
    assert 'index.ipynb' in NBS and '14_asr.ipynb' in NBS, NBS

def saved_outputs(nb):
    "Cell id -> outputs summarised as the runner does, from the notebook file (a name in nbs/, or an absolute path)."
    sys.path.insert(0, str(ROOT/'tests'))
    from run_notebook import summarise
    cells = json.loads((ROOT/'nbs'/nb).read_text())['cells']
    return {c.get('id'): summarise(c.get('outputs')) for c in cells if c['cell_type'] == 'code'}

def test_designated_cells_exist():
    for nb, cid in [*NOT_IN_SMALL, *SAME_OUTPUT]:
        assert cid in saved_outputs(nb), f"{nb} has no code cell {cid} (update tests/test_notebooks.py)"
        if (nb, cid) in SAME_OUTPUT: assert saved_outputs(nb)[cid], f"{nb} cell {cid} has no saved output"

def compare(nb, fresh) -> list:
    "Problems between the outputs saved in `nb` and a fresh run's (`fresh`: the runner's cells)."
    problems = []
    for cid, saved in saved_outputs(nb).items():
        run = fresh.get(cid)
        if run is None or not run['ran']: continue
        want = Counter(o['kind'] for o in saved if o['kind'] in SHOWN)
        got = Counter(o['kind'] for o in run['outputs'] if o['kind'] in SHOWN)
        if (nb, cid) not in NOT_IN_SMALL and any(got[k] < n for k, n in want.items()):
            problems.append(f"cell {cid}: {dict(want)} saved, but the code now shows {dict(got)} (a figure or table it no longer makes)")
        if (nb, cid) in SAME_OUTPUT:
            txt = lambda os_: [(o['kind'], o['text'].strip()) for o in os_ if o['kind'] not in ('figure', 'stderr')]  # warnings vary
            if txt(saved) != txt(run['outputs']):
                problems.append(f"cell {cid} ({SAME_OUTPUT[(nb, cid)]}): saved output differs from a fresh run's\n"
                                f"  saved: {txt(saved)!r:.1500}\n  fresh: {txt(run['outputs'])!r:.1500}")
    return problems

def test_compare_finds_a_lost_figure():
    nb = '20_sweep.ipynb'
    fresh = {cid: dict(ran=True, outputs=outs) for cid, outs in saved_outputs(nb).items()}
    assert compare(nb, fresh) == []
    fresh['d5c97e6c'] = dict(ran=True, outputs=[])                  # the accuracy figure no longer drawn
    fresh['d4f7a2c8'] = dict(ran=True, outputs=[dict(kind='markdown', text='other findings')])
    p = compare(nb, fresh)
    assert len(p) == 2 and 'd5c97e6c' in p[0] and 'no longer makes' in p[0] and 'differs' in p[1], p

def test_runner_forgets_stale_outputs(tmp_path):
    "A cell that now shows nothing must not hand back the figure saved from an older run (execnb keeps it otherwise)."
    cell = lambda i, src, outs: dict(cell_type='code', id=i, metadata={}, execution_count=None, source=src, outputs=outs)
    png = dict(output_type='display_data', metadata={}, data={'image/png': 'iVBORw0KGgo=', 'text/plain': '<Figure>'})
    nb = dict(nbformat=4, nbformat_minor=5, metadata=dict(kernelspec=dict(name='python3', language='python', display_name='Python 3')),
              cells=[cell('c1', 'x = 1', [png]), cell('c2', 'print(x + 1)', [dict(output_type='stream', name='stdout', text='old\n')])])
    fn, out = tmp_path/'stale.ipynb', tmp_path/'out.json'
    fn.write_text(json.dumps(nb))
    r = subprocess.run([sys.executable, str(ROOT/'tests'/'run_notebook.py'), str(fn), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    cells = json.loads(out.read_text())['cells']
    assert cells['c1'] == dict(ran=True, outputs=[]), cells['c1']
    assert cells['c2']['outputs'] == [dict(kind='text', text='2\n')], cells['c2']
    assert compare(str(fn), cells) == ["cell c1: {'figure': 1} saved, but the code now shows {} (a figure or table it no longer makes)"]

@pytest.mark.parametrize('nb', NBS)
def test_notebook_runs(nb):
    env = dict(os.environ, ASR_LIT_SMALL='1', ASR_LIT_QUIET='1')
    out = Path(tempfile.mkdtemp())/'outputs.json'
    r = subprocess.run([sys.executable, str(ROOT/'tests'/'run_notebook.py'), f'nbs/{nb}', str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"{nb} failed in its small configuration:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    problems = compare(nb, json.loads(out.read_text())['cells'])
    assert not problems, f"{nb}: its saved outputs (what the docs show) disagree with the code:\n" + '\n'.join(problems)
