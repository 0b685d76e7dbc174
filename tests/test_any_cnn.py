"""Any CNN a user brings: torchvision architectures and the repo's CIFAR models, pruned at 90% and repaired with every
registered method (one per engine path on the large ones); and models pruned by other tools (torch.nn.utils.prune, plain zeroed weights)."""
import copy, os
import pytest
import torch, torch.nn as nn
from torch.nn.utils import prune as torch_prune

from asr_lit.engine import repair
from asr_lit.methods import METHODS, get_method
from asr_lit.models import create_model, tv_model
from asr_lit.checkpoints import load_pretrained_cifar_resnet
from asr_lit.prune import apply_masks, masks_of, prune_model
from asr_lit.sites import find_sites, site_report

torch.set_num_threads(1)  # on a shared 2-core machine one thread is several times faster than two contending ones
N_CALIB = 16       # the engine's minimum (MIN_CALIB)


def _small_vgg16_bn():
    "torchvision's VGG-16-BN with its two 4096-wide classifier layers narrowed to 256 (features unchanged)."
    m = tv_model('vgg16_bn')
    m.net.classifier[0], m.net.classifier[3], m.net.classifier[6] = nn.Linear(512*7*7, 256), nn.Linear(256, 256), nn.Linear(256, 10)
    return m

# name -> (constructor, input size, block sites expected). torchvision nets need 32 px (five stride-2 steps), as does the
# CIFAR VGG (five max-pools); the other CIFAR nets run on 8 px. The 4096-wide classifier of torchvision's VGG-16
# (120 M of its 138 M weights) makes one repair take a minute on two CPU cores, so the test narrows it; the full model
# runs with ASR_LIT_FULL_TESTS=1.
MODELS = {
    'tv_resnet18': (lambda: tv_model('resnet18'), 32, 8),
    'tv_resnet50': (lambda: tv_model('resnet50'), 32, 16),
    'tv_vgg16_bn': (_small_vgg16_bn, 32, 0),
    'tv_densenet121': (lambda: tv_model('densenet121'), 32, 0),
    'tv_mobilenet_v2': (lambda: tv_model('mobilenet_v2'), 32, 10),
    'tv_regnet_x_400mf': (lambda: tv_model('regnet_x_400mf'), 32, 22),
    'tv_efficientnet_b0': (lambda: tv_model('efficientnet_b0'), 32, 9),
    'resnet20': (lambda: load_pretrained_cifar_resnet(20), 8, 9),
    'cifar_resnet18': (lambda: create_model('cifar_resnet18'), 8, 8),
    'cifar_resnet50': (lambda: create_model('cifar_resnet50'), 8, 16),
    'cifar_vgg16_bn': (lambda: create_model('cifar_vgg16_bn'), 32, 0),
    'cifar_densenet121': (lambda: create_model('cifar_densenet121'), 8, 0),
}
if os.environ.get('ASR_LIT_FULL_TESTS') == '1': MODELS['tv_vgg16_bn_full'] = (lambda: tv_model('vgg16_bn'), 32, 0)
# The large models (a repair there takes seconds to a minute) run one method per path through the engine (the rules
# that differ only in their formula, e.g. ASR's lambda rules, share one), ASR itself, and the reconstruction stage; the
# small ones, of every structure (plain, residual, dense, depthwise, squeeze-excite, grouped), run every method.
LARGE = {'tv_resnet18', 'tv_resnet50', 'tv_vgg16_bn', 'cifar_resnet18', 'cifar_resnet50', 'cifar_vgg16_bn'}
if os.environ.get('ASR_LIT_FULL_TESTS') == '1': LARGE = set()


def _engine_path(m):
    "What decides the engine's work for a method: which passes it runs and what they measure, not the rule's formula."
    return (m.rule is None, m.site, m.recal, m.stage is not None, bool(getattr(m.rule, 'needs_pairs', False)))


def methods_for(name) -> list:
    "Registered methods to run on model `name`: every one (one reconstruction target) on a small model; on a large one, one per engine path, and ASR."
    ms = [k for k, m in METHODS.items() if m.stage is None or k == 'lsq_dense_mean_std']   # one reconstruction method covers them all
    if name not in LARGE: return ms
    first = {}
    for k in ms: first.setdefault(_engine_path(METHODS[k]), k)
    return sorted(set(first.values()) | {'asr'}, key=ms.index)


def test_methods_for():
    every = methods_for('resnet20')
    assert 'asr_eb' in every and 'lsq' not in every and 'lsq_dense_mean_std' in every
    large = methods_for('cifar_resnet50')
    assert {'none', 'bn_only', 'asr', 'corr', 'lsq_dense_mean_std'} <= set(large) and 'asr_eb' not in large
    assert {_engine_path(METHODS[k]) for k in every} == {_engine_path(METHODS[k]) for k in large}   # every path still runs


def _with_bn_stats(model, x):
    "Give a randomly initialised model non-trivial BatchNorm statistics: a training-mode pass on other images, then eval mode."
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm): m.momentum = None
    with torch.no_grad(): model.train()(torch.rand_like(x) * 0.8 + 0.1)
    return model.eval()


def _state(model): return {k: v.clone() for k, v in model.state_dict().items()}


def _check_repaired(repaired, rep, pruned, out_shape, calib):
    with torch.no_grad(): out = repaired(calib[:4])
    assert out.shape == (4,) + tuple(out_shape[1:])
    assert torch.isfinite(out).all(), rep
    for site, g in rep.gains().items():
        dense_var = torch.tensor(rep.channels[rep.channels.site == site].dense_var.values)
        assert torch.isfinite(g).all(), (rep.method, site)
        assert (g >= 0).all(), (rep.method, site, g)
        if not getattr(METHODS[rep.method].rule, 'needs_pairs', False):  # correlation rules flatten uncorrelated channels (gain 0)
            assert (g[dense_var > 0] > 0).all(), (rep.method, site, g)  # 0 only to match a constant dense channel
    after = {n.replace('.module.', '.'): m for n, m in repaired.named_modules()}  # block corrections stay wrapped
    for name, mask in masks_of(pruned).items():
        mod = after[name]
        assert torch.equal(mod.weight_mask.bool(), mask), name
        assert not ((mod.weight != 0) & ~mask).any(), name


@pytest.mark.parametrize('name', list(MODELS))
def test_prune_and_repair_every_method(name):
    make, size, n_blocks = MODELS[name]
    torch.manual_seed(0)
    calib = torch.rand(N_CALIB, 3, size, size)
    dense = _with_bn_stats(make(), calib)
    before = _state(dense)
    with torch.no_grad(): out_shape = dense(calib).shape
    report = site_report(dense)
    n_sites = report[report.status == 'site'].kind.value_counts()
    assert n_sites.get('block', 0) == n_blocks and n_sites['bn'] > 0 and n_sites['conv'] > 0
    pruned = prune_model(dense, 0.9)
    for method in methods_for(name):
        repaired, rep = repair(pruned, dense, calib, method)
        _check_repaired(repaired, rep, pruned, out_shape, calib)
        if METHODS[method].rule is not None and METHODS[method].site == 'block':
            assert len(rep.gains()) == n_blocks, (name, method)
            if n_blocks == 0: assert any("no 'block' sites" in w for w in rep.warnings)
    if n_blocks == 0:   # no residual blocks: ASR's rule still runs at BatchNorm outputs
        repaired, rep = repair(pruned, dense, calib, 'asr', site='bn')
        _check_repaired(repaired, rep, pruned, out_shape, calib)
        assert len(rep.gains()) == n_sites['bn']
    after = _state(dense)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


# --- models pruned by other tools ----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def r20():
    calib = torch.rand(N_CALIB, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return load_pretrained_cifar_resnet(20), calib


def _convs(model): return [(m, 'weight') for m in model.modules() if isinstance(m, nn.Conv2d)][1:]


@pytest.mark.parametrize('site', ['block', 'conv'])
def test_torch_global_unstructured(r20, site):
    dense, calib = r20
    pruned = copy.deepcopy(dense)
    torch_prune.global_unstructured(_convs(pruned), pruning_method=torch_prune.L1Unstructured, amount=0.9)
    torch_prune.l1_unstructured(pruned.linear, 'weight', amount=0.5)
    pruned(calib).sum().backward()          # a forward with gradients leaves non-leaf `weight`s behind
    masks = masks_of(pruned)
    assert len(masks) == 19
    for method in ('bn_only', 'layerwise', 'asr', 'mean_std'):
        repaired, rep = repair(pruned, dense, calib, method, site=site)
        _check_repaired(repaired, rep, pruned, (N_CALIB, 10), calib)
        if method != 'bn_only': assert len(rep.gains()) == len(find_sites(dense, site))
    assert masks_of(pruned).keys() == masks.keys()


def test_plain_zeroed_weights(r20):
    "A model pruned by a tool that just zeroes weights: wrap with apply_masks so repair keeps the zeros."
    dense, calib = r20
    zeroed = prune_model(dense, 0.9)
    for m in zeroed.modules():              # make the zeros permanent: a plain model, no masks attached
        if hasattr(m, 'weight_mask'): torch_prune.remove(m, 'weight')
    assert not masks_of(zeroed)
    wrapped = apply_masks(zeroed, {n: m.weight != 0 for n, m in zeroed.named_modules()
                                   if isinstance(m, (nn.Conv2d, nn.Linear)) and (m.weight == 0).any()})
    for site in ('block', 'conv', 'bn'):
        repaired, rep = repair(wrapped, dense, calib, 'asr', site=site)
        _check_repaired(repaired, rep, wrapped, (N_CALIB, 10), calib)
        for n, m in zeroed.named_modules():
            if isinstance(m, nn.Conv2d):
                w = dict((k.replace('.module.', '.'), v) for k, v in repaired.named_modules())[n].weight
                assert not ((w != 0) & (m.weight == 0)).any()
