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
    (['--augment', 'rotate'], 'augment must be one of'),
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
    for opt in ('--arch', '--sparsity', '--kind', '--method', '--lam_rule', '--n_calib', '--augment', '--seed', '--device', '--out'):
        assert opt in out

def test_tiny_repair_writes_model(tmp_path):
    "A real run: the model written has the sparsity asked for, and the accuracies printed are plausible and its own."
    import re, torch
    from asr_lit.corrections import load_repaired
    from asr_lit.prune import prunable_layers
    from asr_lit.data import cifar10, stratified_subset
    from asr_lit.evaluate import accuracy
    out = tmp_path/'r20.safetensors'
    r = run('asr_repair', '--arch', 'resnet20', '--sparsity', '0.8', '--n_calib', '32', '--n_test', '200', '--out', str(out))
    assert r.returncode == 0, r.stderr
    assert 'asr:' in r.stdout and out.exists()
    acc = {k: float(v) for k, v in re.findall(r'^\s*(\w+): ([\d.]+)%$', r.stdout, re.M)}
    assert set(acc) == {'dense', 'pruned', 'asr'}, r.stdout
    # ResNet-20 on 200 JPEG test images: about 81% dense; at 80% global sparsity the sweep has 35% unrepaired, 60% repaired
    assert 70 < acc['dense'] < 92 and acc['pruned'] < 50 and acc['pruned'] + 10 < acc['asr'] <= acc['dense'], r.stdout
    m = load_repaired(out).eval()
    layers = prunable_layers(m)
    zeros = sum(int((l.weight == 0).sum()) for l in layers.values())
    total = sum(l.weight.numel() for l in layers.values())
    assert abs(zeros/total - 0.8) < 1e-3, f"asked for 80% sparsity of the prunable layers, got {zeros/total:.4f}"
    first, last = [mod for mod in m.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))][::len(layers) + 1]
    assert not (first.weight == 0).any() and not (last.weight == 0).any()   # first conv and classifier stay dense
    test = stratified_subset(cifar10('test'), 200, seed=0)
    assert abs(100*accuracy(m, test, device='cpu', progress=False) - acc['asr']) < 0.01   # the file is the model it measured
