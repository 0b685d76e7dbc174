"""The one-pass engine, its chunked schedules (staged, replay) and a naive layer-by-layer repair agree.

The naive reference (benchmarks/_reference.py) runs one full forward pass per site (and, with bn='per_bn', per
BatchNorm) and shares no pass logic with the engine. Per-channel gains must agree to 1e-4 relative."""
import sys
from pathlib import Path

import pytest
import torch, torch.nn as nn, torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
from _reference import naive_repair, stats64

import asr_lit.passes as P
from asr_lit.engine import repair
from asr_lit.methods import METHODS, register_method
from asr_lit.stats import ChannelStats, StreamingStats, channel_stats
from asr_lit.passes import recalibrate_bn
from asr_lit.models import clone_model
from asr_lit.rules.channelwise import naive_rule, gamma_hat, dead_channels
from asr_lit.rules.asr import asr_rule
from asr_lit.data import shared_dir
from asr_lit.models import CifarDenseNet, BasicBlock, tv_model
from asr_lit.checkpoints import load_pretrained_cifar_resnet
from asr_lit.prune import prune_model
from asr_lit.sites import batchnorms

TOL = 1e-4
AKA = shared_dir() / 'weights' / 'cifar10-resnet-akamaster'
needs_weights = pytest.mark.skipif(not any(AKA.glob('resnet56-*.th')), reason=f"no akamaster weights in {AKA}")


def corr_rule(dense, pruned):
    "rho * gamma_hat (a correlation-aware rule): needs the paired covariance."
    rho = pruned.cov / (dense.var * pruned.var).sqrt().clamp_min(1e-300)
    return torch.where(dead_channels(dense.var, pruned.var), torch.ones_like(rho), rho * gamma_hat(dense.var, pruned.var)), None
corr_rule.needs_pairs = True

RULES = {'_x_asr': asr_rule, '_x_naive': naive_rule, '_x_corr': corr_rule}


@pytest.fixture(scope='module', autouse=True)
def rules():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # small batches: on a shared 2-core machine, thread hand-offs dominate otherwise
    for name, rule in RULES.items(): register_method(name, rule, 'block', 'before', 'test rule')
    yield
    for name in RULES: METHODS.pop(name, None)
    torch.set_num_threads(threads)


def rel(a:dict, b:dict) -> float:
    "Largest relative difference between per-site gains (b is the reference)."
    assert list(a) == list(b), (list(a), list(b))
    return max(float(((a[k].double() - b[k].double()).abs() / b[k].double().abs().clamp_min(1e-12)).max()) for k in b)


def run(pruned, dense, x, method, **kw):
    model, rep = repair(pruned, dense, x, method, **kw)
    return model, rep


def out_close(a, b, x, tol=1e-3):
    with torch.no_grad(): ya, yb = a(x), b(x)
    assert float((ya - yb).abs().max()) <= tol * max(1., float(yb.abs().max())), float((ya - yb).abs().max())


# --- statistics ----------------------------------------------------------------------------------------------

def test_channel_stats_against_float64():
    g = torch.Generator().manual_seed(1)
    scale = torch.tensor([1., 1e-3, 0., 2., 1e3]).view(1, 5, 1, 1)
    shift = torch.tensor([0., 50., 3., -1., 0.]).view(1, 5, 1, 1)
    x = torch.randn(37, 5, 6, 6, generator=g) * scale + shift
    y = 0.5 * x + torch.randn(x.shape, generator=g)
    ref, s = stats64(x, y), channel_stats(x, paired=y)
    live = ref.var > 0
    assert torch.allclose(s.mean, ref.mean, rtol=1e-6, atol=1e-6)
    assert torch.allclose(s.var[live], ref.var[live], rtol=1e-5)
    assert (s.var[~live] == 0).all()                    # a constant channel is exactly dead
    assert torch.allclose(s.cov, ref.cov, rtol=1e-5, atol=1e-9)
    acc = StreamingStats()
    for xs, ys in zip(x.split(10), y.split(10)): acc.add(xs, ys)
    r = acc.result()
    assert r.n == s.n and torch.allclose(r.var, s.var, rtol=1e-5) and torch.allclose(r.cov, s.cov, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match='StreamingStats'): s + s
    with pytest.raises(ValueError, match='every chunk or for none'): StreamingStats().add(x, y).add(x)


# --- ResNet-56, pretrained: one pass, staged, naive ------------------------------------------------------------

@pytest.fixture(scope='module')
def resnet56():
    from asr_lit.data import cifar10, calib_sample
    dense = load_pretrained_cifar_resnet(56)
    return dense, prune_model(dense, 0.9), calib_sample(cifar10('train'), 32, seed=0)


@needs_weights
def test_resnet56_asr_one_pass_staged_naive(resnet56):
    dense, pruned, x = resnet56
    m1, r1 = run(pruned, dense, x, '_x_asr')
    m2, r2 = run(pruned, dense, x, '_x_asr', max_batch=12)
    m3, g3, _ = naive_repair(pruned, dense, x, asr_rule, stop_early=True)
    m4, r4 = run(pruned, dense, x, '_x_asr', channels_last=False)
    m5, r5 = run(pruned, dense, x, '_x_asr', max_batch=12, channels_last=False)
    assert r1.schedule.startswith('one pass') and r2.schedule.startswith('staged: 3 chunks'), (r1.schedule, r2.schedule)
    assert 'NCHW fp32' in r4.schedule and 'NCHW fp32' in r5.schedule and 'NCHW' not in r1.schedule
    assert len(g3) == 27
    for r in (r1, r2, r4, r5): assert rel(r.gains(), g3) < TOL, (r.schedule, rel(r.gains(), g3))
    for m in (m1, m2, m4, m5): out_close(m, m3, x[:8])
    assert m1.conv1.weight.is_contiguous()                 # the repaired model keeps the NCHW format of its parameters


@needs_weights
def test_resnet56_bf16_option(resnet56):
    "bf16 passes: gains near the fp32 ones (not equal), statistics still float64; a reference in the other precision is refused."
    from asr_lit.engine import dense_reference
    dense, pruned, x = resnet56
    _, r32 = run(pruned, dense, x, '_x_asr')
    _, r16 = run(pruned, dense, x, '_x_asr', max_batch=12, precision='bf16')
    assert 'bf16' in r16.schedule and str(r16.channels.dense_var.dtype) == 'float64'
    d = torch.cat([(r16.gains()[k] - g).abs() / g.abs().clamp_min(1e-12) for k, g in r32.gains().items()])
    assert 0 < float(d.median()) < 1e-2, float(d.median())
    with pytest.raises(ValueError, match='measured in fp32'): run(pruned, dense, x, '_x_asr', reference=dense_reference(dense, x), precision='bf16')
    with pytest.raises(ValueError, match='unknown precision'): run(pruned, dense, x, '_x_asr', precision='fp16')


@needs_weights
def test_resnet56_paired_one_pass_staged(resnet56):
    dense, pruned, x = resnet56
    _, r1 = run(pruned, dense, x, '_x_corr')
    _, r2 = run(pruned, dense, x, '_x_corr', max_batch=12)
    assert 'cov' in r1.channels and rel(r2.gains(), r1.gains()) < TOL
    assert torch.allclose(torch.tensor(r2.channels['cov'].values), torch.tensor(r1.channels['cov'].values), rtol=1e-4, atol=1e-7)


# --- a DenseNet with concatenations: every schedule, every recalibration order, both naive BatchNorm modes --------

@pytest.fixture(scope='module')
def densenet():
    torch.manual_seed(0)
    dense = CifarDenseNet((2, 2), growth=8, reduction=0.5).eval()
    recalibrate_bn(dense, torch.rand(64, 3, 32, 32))             # realistic BatchNorm statistics for a random net
    return dense, prune_model(dense, 0.8), torch.rand(32, 3, 32, 32)


@pytest.mark.parametrize('channels_last', [True, False])
@pytest.mark.parametrize('recal', ['before', 'after', 'none'])
@pytest.mark.parametrize('rule', ['naive', 'corr'])
def test_densenet_schedules_and_naive(densenet, recal, rule, channels_last):
    dense, pruned, x = densenet
    method, fn = f'_x_{rule}', RULES[f'_x_{rule}']
    m1, r1 = run(pruned, dense, x, method, site='bn', recal=recal, channels_last=channels_last)
    m2, r2 = run(pruned, dense, x, method, site='bn', recal=recal, max_batch=16, channels_last=channels_last)
    m3, r3 = run(pruned, dense, x, method, site='bn', recal=recal, max_batch=16, schedule='replay', channels_last=channels_last)
    m4, g4, s4 = naive_repair(pruned, dense, x, fn, site='bn', recal=recal, bn='per_bn', stop_early=True)
    assert len(g4) == len(batchnorms(dense)) == 10
    for r in (r1, r2, r3): assert rel(r.gains(), g4) < TOL, (r.schedule, rel(r.gains(), g4))
    for m in (m1, m2, m3): out_close(m, m4, x[:8])
    if rule == 'corr':
        ref = torch.cat([s4[k].cov for k in g4])
        for r in (r1, r2, r3): assert torch.allclose(torch.tensor(r.channels['cov'].values), ref, rtol=1e-4, atol=1e-8)


def test_naive_bn_modes_agree(densenet):
    "The reference's two BatchNorm mechanisms (training-mode passes, per-BatchNorm passes) agree with each other."
    dense, pruned, x = densenet
    _, ga, _ = naive_repair(pruned, dense, x, naive_rule, site='bn', bn='train', stop_early=True)
    _, gb, _ = naive_repair(pruned, dense, x, naive_rule, site='bn', bn='per_bn', stop_early=True)
    assert rel(ga, gb) < TOL


# --- a torchvision ResNet; a model fx cannot trace ----------------------------------------------------------------

def test_torchvision_resnet18():
    torch.manual_seed(0)
    dense = tv_model('resnet18').eval()
    recalibrate_bn(dense, torch.rand(32, 3, 32, 32))
    pruned, x = prune_model(dense, 0.9), torch.rand(24, 3, 32, 32)
    _, r1 = run(pruned, dense, x, '_x_naive')
    _, r2 = run(pruned, dense, x, '_x_naive', max_batch=10)
    _, r3 = run(pruned, dense, x, '_x_naive', max_batch=10, schedule='replay')
    _, g4, _ = naive_repair(pruned, dense, x, naive_rule, stop_early=True)
    assert len(g4) == 8 and r2.schedule.startswith('staged') and r3.schedule.startswith('replay')
    for r in (r1, r2, r3): assert rel(r.gains(), g4) < TOL, (r.schedule, rel(r.gains(), g4))


class Untraceable(nn.Module):
    "A small residual net whose forward branches on the data: torch.fx cannot trace it."
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 32, 2, 'B'))
        self.fc = nn.Linear(32, 10)
    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)))
        if out.mean() > -1e9: out = self.blocks(out)            # data-dependent control flow
        return self.fc(out.mean((2, 3)))


def test_untraceable_model_falls_back_to_replay():
    torch.manual_seed(0)
    dense = Untraceable().eval()
    recalibrate_bn(dense, torch.rand(32, 3, 32, 32))
    pruned, x = prune_model(dense, 0.8), torch.rand(32, 3, 32, 32)
    _, r1 = run(pruned, dense, x, '_x_asr')
    _, r2 = run(pruned, dense, x, '_x_asr', max_batch=8)
    assert r2.schedule.startswith('replay: 4 chunks') and 'does not trace' in r2.schedule, r2.schedule
    assert rel(r2.gains(), r1.gains()) < TOL
    with pytest.raises(ValueError, match="use schedule='replay'"): run(pruned, dense, x, '_x_asr', schedule='staged')


# --- choosing the schedule from the memory budget --------------------------------------------------------------

def test_budget_chooses_schedule(densenet):
    dense, pruned, x = densenet
    _, r1 = run(pruned, dense, x, '_x_naive', site='bn')
    assert r1.schedule.startswith('one pass')
    need = float(r1.schedule.split('estimated activation memory ')[1].split(' MB')[0])
    _, r2 = run(pruned, dense, x, '_x_naive', site='bn', mem_budget_mb=need * 0.9)     # streamed: staged or replay
    assert not r2.schedule.startswith('one pass'), r2.schedule
    assert rel(r2.gains(), r1.gains()) < TOL
    _, r3 = run(pruned, dense, x, '_x_naive', site='bn', mem_budget_mb=need * 0.9, max_batch=8)
    assert r3.schedule.startswith(('staged: 4 chunks', 'replay: 4 chunks')), r3.schedule
    with pytest.raises(ValueError, match='too small'): run(pruned, dense, x, '_x_naive', site='bn', mem_budget_mb=1e-4)
    p2 = clone_model(pruned)
    bn = next(iter(batchnorms(p2).values()))
    bn.track_running_stats, bn.running_mean, bn.running_var, bn.num_batches_tracked = False, None, None, None
    with pytest.raises(ValueError, match='track_running_stats'): run(p2, dense, x, '_x_naive', site='bn', max_batch=8)


def test_recalibrate_bn_chunked(densenet):
    dense, _, x = densenet
    a = recalibrate_bn(clone_model(dense), x)
    for kw in (dict(max_batch=7), dict(max_batch=7, schedule='replay'), dict(mem_budget_mb=3), dict(channels_last=False),
               dict(max_batch=7, channels_last=False)):
        b = recalibrate_bn(clone_model(dense), x, **kw)
        for m, n in zip(batchnorms(a).values(), batchnorms(b).values()):
            assert torch.allclose(m.running_mean, n.running_mean, atol=1e-5)
            assert torch.allclose(m.running_var, n.running_var, rtol=1e-4)


def test_staged_with_offloaded_store(densenet):
    "The staged schedule with its cached activations in another memory (host memory, on a GPU) gives the same statistics."
    dense, _, x = densenet
    a = recalibrate_bn(clone_model(dense), x)
    b = clone_model(dense)
    with torch.no_grad(): P._drive(P._staged(b, P._trace(b), list(x.split(10)), True, x.device, 'cpu'))
    for m, n in zip(batchnorms(a).values(), batchnorms(b).values()):
        assert torch.allclose(m.running_var, n.running_var, rtol=1e-5, atol=1e-8)


# --- the dense reference: a value, never a stale cache ---------------------------------------------------------

def test_dense_reference_is_explicit_and_never_stale(densenet):
    "A dense model changed in place between two repairs: the second repair sees the change; a given reference is reused."
    from asr_lit.engine import dense_reference
    dense, pruned, x = densenet
    d = clone_model(dense)
    _, r1 = repair(pruned, d, x, '_x_naive', site='bn')
    ref = dense_reference(d, x)
    _, r_ref = repair(pruned, d, x, '_x_naive', site='bn', reference=ref)
    assert rel(r_ref.gains(), r1.gains()) < 1e-12                       # the same numbers as measuring inside repair
    bn = batchnorms(d)[list(batchnorms(d))[-1]]
    with torch.no_grad(): bn.weight.mul_(2)                             # the dense model changes in place
    _, r2 = repair(pruned, d, x, '_x_naive', site='bn')
    last = r1.channels.site.iloc[-1]
    v1 = torch.tensor(r1.channels[r1.channels.site == last].dense_var.values)
    v2 = torch.tensor(r2.channels[r2.channels.site == last].dense_var.values)
    live = v1 > 1e-12
    assert torch.allclose(v2[live] / v1[live], torch.full_like(v1[live], 4.), rtol=1e-6)   # the new dense variances
    _, r3 = repair(pruned, d, x, '_x_naive', site='bn', reference=ref)   # the old reference, passed explicitly: old numbers
    assert rel(r3.gains(), r1.gains()) < 1e-12
    with pytest.raises(ValueError, match='shape'): repair(pruned, d, x[:16], '_x_naive', site='bn', reference=ref)
