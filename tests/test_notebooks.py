"Every notebook runs, top to bottom, in its small configuration (as `nbdev_test` runs it), in a fresh process."
import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))

def test_notebooks_found():
    assert 'index.ipynb' in NBS and '14_asr.ipynb' in NBS, NBS

@pytest.mark.parametrize('nb', NBS)
def test_notebook_runs(nb):
    env = dict(os.environ, ASR_LIT_SMALL='1', ASR_LIT_QUIET='1')
    r = subprocess.run([str(Path(sys.executable).parent/'nbdev_test'), '--path', f'nbs/{nb}', '--do_print'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{nb} failed under nbdev_test:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
