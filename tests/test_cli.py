"The console scripts: bad arguments exit non-zero with a one-line message; a tiny real run works."
import subprocess, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent

def run(script, *args):
    return subprocess.run([str(BIN/script), *args], capture_output=True, text=True, timeout=600)

@pytest.mark.parametrize('args,msg', [
    (['--sparsity', '1.0'], '[0, 1)'),
    (['--sparsity', '-0.5'], '[0, 1)'),
    (['--method', 'magic'], 'unknown repair method'),
    (['--arch', 'resnet1000'], 'unknown architecture'),
    (['--arch', '/nonexistent/model.safetensors'], 'does not exist'),
    (['--kind', 'diagonal'], 'unknown sparsity kind'),
    (['--lam_rule', 'magic'], 'unknown lambda rule'),
    (['--dataset', 'mnist'], 'unknown dataset'),
])
def test_repair_bad_arguments(args, msg):
    r = run('asr_repair', *args)
    assert r.returncode == 2, r
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_demo_bad_sparsity():
    r = run('asr_demo', '--sparsities', '0.5,1.2')
    assert r.returncode == 2 and '[0, 1)' in r.stderr, r

def test_help_explains_options():
    out = run('asr_repair', '--help').stdout
    for opt in ('--arch', '--sparsity', '--kind', '--method', '--lam_rule', '--n_calib', '--seed', '--device', '--out'):
        assert opt in out

def test_tiny_repair_writes_model(tmp_path):
    out = tmp_path/'r20.safetensors'
    r = run('asr_repair', '--arch', 'resnet20', '--sparsity', '0.8', '--n_calib', '32', '--n_test', '200', '--out', str(out))
    assert r.returncode == 0, r.stderr
    assert 'asr:' in r.stdout and out.exists()
    from asr_lit.cli import load_repaired
    m = load_repaired(out)
    assert sum(int((p == 0).sum()) for n, p in m.named_parameters() if n.endswith('weight') and p.dim() == 4) > 0
