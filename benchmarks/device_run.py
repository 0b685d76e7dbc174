"""GPU machine run (prepared by `device_prep.py`): sweep and reconstruction rows of the CIFAR models whose weights travel in weights/, on CUDA in float32.
The data travel as the zip's JPEG files (the test split; the calibration images of draws 0-2, put at their indices in the
training split); what asr_lit decodes from them there is checked by sha256 against what it decodes here."""
import hashlib, math, os, shutil, sys, time, warnings
from functools import partial
from pathlib import Path
T0 = time.time()
ROOT = Path(__file__).resolve().parents[1]
CARRY = Path(os.environ.get('ASR_LIT_CARRY') or ROOT/'gpu_carry')   # what `device_prep.py` wrote
sys.path[:0] = [str(CARRY/'stub'), str(ROOT)]
import numpy as np, pandas as pd, torch
torch.backends.cudnn.allow_tf32 = False; torch.backends.cuda.matmul.allow_tf32 = False   # float32 as on the CPU, not TF32
from asr_lit.data import ImageSet, CIFAR10_CLASSES, stratified_subset, calib_indices
from asr_lit.checkpoints import load_model, available_models
import asr_lit.sweep as sw
from asr_lit.evaluate import run_grid, DEFAULT_METHODS
OUT, DEADLINE = Path(os.environ.get('OUT', '/tmp/out')), float(os.environ.get('GPU_DEADLINE_S', 480))
N_TEST = int(os.environ['GPU_N_TEST']) if os.environ.get('GPU_N_TEST') else None   # sweep jobs: a stratified test subset (under test); default the whole split
left_min = lambda: (DEADLINE - (time.time() - T0)) / 60
dev = 'cuda' if torch.cuda.is_available() else 'cpu'
print('device', dev, torch.cuda.get_device_name() if dev == 'cuda' else '', 'torch', torch.__version__, flush=True)

import pickle
from asr_lit.data import _decode, _stack
d = pickle.load(open(CARRY/'cifar.pkl', 'rb'))
d['train_idx'] = torch.tensor(d['train_idx'])
sha = lambda t: hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()
test_x = _stack([_decode(b) for b in d['test_jpeg']], 'test')   # asr_lit's own decoding, as on the CPU
assert sha(test_x) == d['test_sha'], 'the test images decode differently here than on the CPU: stop'
train_x = torch.zeros(d['train_shape'], dtype=torch.uint8)
train_x[d['train_idx']] = _stack([_decode(b) for b in d['train_jpeg']], 'train')
assert sha(train_x[d['train_idx']]) == d['train_sha'], 'the calibration images decode differently here: stop'
train = ImageSet(train_x, d['train_y'], CIFAR10_CLASSES, d['train_source'], 'train')
test = ImageSet(test_x, d['test_y'], CIFAR10_CLASSES, d['test_source'], 'test')
for s in (0, 1, 2):   # every calibration draw lies in the images that travelled, and they are the CPU's
    i = calib_indices(train, 1024, s)
    assert torch.isin(i, d['train_idx']).all() and sha(train_x[i]) == d['calib_sha'][s], f'draw {s} differs'
def _load_data(name, n_test):
    assert name == 'cifar10'
    return train, (stratified_subset(test, n_test, seed=0) if n_test is not None and 0 < n_test < len(test) else test)
sw._load_data = _load_data
warnings.filterwarnings('ignore', message='.*dead or constant inputs')
print(f'data ready {time.time()-T0:.1f}s; models here: {available_models()}', flush=True)

JOBS = [j.split(':') for j in sys.argv[1:]]   # 'sweep:arch:sparsities[:methods[:seeds]]' or 'recon:arch:sparsities'; GPU_DEADLINE_S bounds the run
if os.environ.get('GPU_FRESH') != '1':   # resume from the committed files (GPU_FRESH=1: only new rows, e.g. under test)
    shutil.copy(ROOT/'nbs'/'sweep_results.csv', OUT/'sweep_results.csv')
    shutil.copy(ROOT/'nbs'/'reconstruction_results.csv', OUT/'reconstruction_results.csv')
RECON = ('bn_only', 'mean_std', 'asr', 'lsq', 'lsq_dense', 'lsq_dense_mean_std')   # 18_reconstruction's METHODS
import traceback
from asr_lit.evaluate import compare_methods
BAD, small = set(), stratified_subset(test, 500, seed=0)
first = load_model(JOBS[0][1]) if JOBS and os.environ.get('GPU_SMOKE', '1') == '1' else None
for m in dict.fromkeys(DEFAULT_METHODS + RECON) if first is not None else ():   # each method once, small: those that fail are left out below
    try: t = time.time(); r = compare_methods(first, train, small, (0.9,), (m,), (0,), 64, device=dev, progress=False); print(f'smoke {m}: {100*r.acc[0]:.1f}% {time.time()-t:.1f}s', flush=True)
    except Exception: BAD.add(m); print(f'smoke {m} FAILED'); traceback.print_exc()
del first
for job, arch, sps, *ms in JOBS:
    if left_min() <= 0.2: print('deadline: stop before', job, arch, sps); break
    sps = tuple(float(s) for s in sps.split(','))
    t = time.time()
    try:
        if job == 'sweep':
            seeds = tuple(int(x) for x in ms[1].split(',')) if len(ms) > 1 else (0, 1, 2)
            grid = sw.sweep_grid((arch,), sps, ('global',), tuple(m for m in (ms[0].split(',') if ms else DEFAULT_METHODS) if m not in BAD), seeds, n_test=N_TEST)
            before = len(sw.pending_runs(grid, OUT/'sweep_results.csv'))
            sw.run_sweep(grid, OUT/'sweep_results.csv', device=dev, progress=False, budget_min=left_min())
            added = before - len(sw.pending_runs(grid, OUT/'sweep_results.csv'))
        else:
            test2k = stratified_subset(test, 2000, seed=0)
            csv = OUT/'reconstruction_results.csv'
            before = len(pd.read_csv(csv)) if csv.exists() else 0
            run_grid({arch: partial(load_model, arch)}, train, test2k, sps, tuple(m for m in RECON if m not in BAD), (0, 1, 2), 1024, csv=csv, budget_min=left_min(), device=dev)
            added = len(pd.read_csv(csv)) - before
    except Exception: added = 0; print(f'{job} {arch} FAILED'); traceback.print_exc()
    print(f'{job} {arch} {sps}: {added} rows in {time.time()-t:.0f}s; {left_min():.1f} min left', flush=True)
print(f'done in {time.time()-T0:.0f}s', flush=True)
