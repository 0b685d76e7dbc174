"Smoke tests of the benchmarks: tiny settings (ResNet-20, a few images, one round), every figure runs and is printed."
import subprocess, sys
from pathlib import Path

import pytest
from asr_lit.data import shared_dir

ROOT = Path(__file__).resolve().parents[1]
AKA = shared_dir() / 'weights' / 'cifar10-resnet-akamaster'


def bench(script, out, *args):
    "Run `benchmarks/<script>` with `args` and `--out out`; the report it wrote (the run must exit 0)."
    p = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / script), *args, '--out', str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    return out.read_text()


@pytest.mark.skipif(not any(AKA.glob('resnet20-*.th')), reason=f"no akamaster weights in {AKA}")
def test_bench_smoke(tmp_path):
    out = tmp_path / 'smoke.txt'
    p = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'bench_repair.py'), '--smoke', '--threads', '1',
                        '--device', 'cpu', '--lsq', '--out', str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    text = out.read_text()
    for s in ('## resnet20', 'forward', 'asr', 'asr_1pass', 'asr_bf16', 'chunked', 'naive', 'lsq_dense', 'lsq / forward', 'goals:',
              'goal <= 1.0', 'load average', 'torch '):
        assert s in text, (s, text)
    assert 'chunked: staged: 4 chunks' in text and 'asr: one pass over 32 images' in text, text


def test_bench_train_smoke(tmp_path):
    out = tmp_path / 'train.txt'
    p = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'bench_train.py'), '--models', 'resnet20', '--steps', '2',
                        '--bs', '16', '--out', str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    text = out.read_text()
    for s in ('bench_train', 'native bf16', 'resnet20        fp32', 'resnet20        bf16', 'trainer at', 'of the bare bf16 step'):
        assert s in text, (s, text)


@pytest.mark.skipif(not any(AKA.glob('resnet20-*.th')), reason=f"no akamaster weights in {AKA}")
def test_bench_floor_smoke(tmp_path):
    out = tmp_path / 'floor.txt'
    p = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'bench_floor.py'), '--models', 'resnet20', '--n', '32',
                        '--n-test', '100', '--chunk', '16', '--chunks', '16', '32', '--repeats', '1', '--out', str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    text = out.read_text()
    for s in ('eval NCHW fp32', 'eval channels_last bf16', 'eval predict() default', 'torch update_bn', 'goal:',
              'recalibrate_bn() default / update_bn', 'recalibration by chunk size', 'bf16 statistics', 'bf16 accuracy'):
        assert s in text, (s, text)


def test_bench_sweep_smoke(tmp_path):
    out = tmp_path / 'sweep.txt'
    text = bench('bench_sweep.py', out, '--smoke')
    for s in ('bench_sweep', 'dense reference reused', 'bn_only', 'asr', 'x forward', 'goal: the slowest channel-wise repair / forward', 'of which the per-channel statistics'):
        assert s in text, (s, text)


@pytest.mark.skipif(not any(AKA.glob('resnet20-*.th')), reason=f"no akamaster weights in {AKA}")
def test_bench_dist_smoke(tmp_path):
    out = tmp_path / 'dist.txt'
    text = bench('bench_dist.py', out, '--smoke')
    for s in ('runs/min', 'this process', '1 worker x', 'workers x 1 thread', 'rows equal across the three: True', 'load average'):
        assert s in text, (s, text)


def test_device_run_reproduces_the_cpu_path(tmp_path):
    "The GPU machine's run (`device_prep.py`, `device_run.py`) rebuilds the data from the carried JPEG files and writes the rows `run_sweep` writes here."
    import os, pandas as pd
    from asr_lit.sweep import sweep_grid, run_sweep, SWEEP_KEYS
    env = dict(os.environ, ASR_LIT_CARRY=str(tmp_path/'carry'), OUT=str(tmp_path/'out'), GPU_FRESH='1', GPU_SMOKE='0', GPU_DEADLINE_S='600', GPU_N_TEST='1000')
    (tmp_path/'out').mkdir()
    for cmd in (['device_prep.py'], ['device_run.py', 'sweep:resnet20-jpeg-s0:0.5:bn_only:1']):
        p = subprocess.run([sys.executable, str(ROOT/'benchmarks'/cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    there = pd.read_csv(tmp_path/'out'/'sweep_results.csv')
    here = run_sweep(sweep_grid(('resnet20-jpeg-s0',), (0.5,), methods=('bn_only',), seeds=(1,), n_test=1000), tmp_path/'here.csv', device='cpu', progress=False)
    assert len(there) == 1 and there.n_test[0] == 1000
    cols = SWEEP_KEYS + ['dense_acc', 'acc', 'data_source', 'weights_sha256']
    pd.testing.assert_frame_equal(there[cols].sort_values('seed').reset_index(drop=True), here[cols].sort_values('seed').reset_index(drop=True))
