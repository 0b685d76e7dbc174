"""Prepare a GPU machine's run of the sweep (`device_run.py`), on this machine: write `gpu_carry/` (ignored by git) with the
CIFAR-10 JPEG files the run needs (the test split; calibration draws 0-2 of 1,024 images), the sha256 of the tensors
asr_lit decodes from them here (the run checks its own decoding against them), and a stand-in for fastprogress.
(`ASR_LIT_CARRY` names another folder.) Then carry `gpu_carry/` and the weights of the models to run (64 MiB in all), and on the GPU machine, from the repository root:
    python3 benchmarks/device_run.py sweep:cifar_resnet50-jpeg-s0:0.9,0.7,0.95 recon:cifar_resnet50-jpeg-s0:0.9
Results land in $OUT/sweep_results.csv and $OUT/reconstruction_results.csv (the committed files plus the new rows)."""
import hashlib, os, pickle, zipfile, torch
from pathlib import Path
from asr_lit.data import cifar10, calib_indices, shared_dir, _zip_members
tr, te = cifar10('train'), cifar10('test')
sha = lambda t: hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()
draws = {s: calib_indices(tr, 1024, s) for s in (0, 1, 2)}
idx = torch.unique(torch.cat(list(draws.values())))
zf = zipfile.ZipFile(shared_dir()/'data'/'cifar10-jpeg.zip')
(mtr, _), (mte, _) = _zip_members(zf, 'train'), _zip_members(zf, 'test')
assert len(mtr) == len(tr) and len(mte) == len(te)
d = dict(test_jpeg=[zf.read(n) for n, _ in mte], test_y=te.y.tolist(), test_sha=sha(te.x), test_source=te.source, test_shape=tuple(te.x.shape),
         train_jpeg=[zf.read(mtr[i][0]) for i in idx.tolist()], train_idx=idx.tolist(), train_shape=tuple(tr.x.shape), train_y=tr.y.tolist(),
         train_source=tr.source, train_sha=sha(tr.x[idx]), calib_sha={s: sha(tr.x[i]) for s, i in draws.items()})
out = Path(os.environ.get('ASR_LIT_CARRY') or Path(__file__).resolve().parents[1]/'gpu_carry')   # where the run reads it
(out/'stub'/'fastprogress').mkdir(parents=True, exist_ok=True)
(out/'stub'/'fastprogress'/'__init__.py').write_text('')
(out/'stub'/'fastprogress'/'fastprogress.py').write_text('"Stand-in for fastprogress on the GPU machine (its wheel needs fasthtml): bars that only iterate."\n'
    'def progress_bar(it, *a, **k): return it\ndef master_bar(it, *a, **k): return it\n')
with open(out/'cifar.pkl', 'wb') as f: pickle.dump(d, f, protocol=5)
print(len(idx), 'train images;', sum(map(len, d['test_jpeg']))/2**20, 'MiB test,', sum(map(len, d['train_jpeg']))/2**20, 'MiB train')
