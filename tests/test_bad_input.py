"""Every mistake a user can make gets an error (or, where the input is usable, a warning) that says what to do.

Missing, garbage and truncated data zips are covered in tests/test_data.py (test_missing_zip_says_where_and_what_to_do,
test_garbage_zip_is_reported_corrupt, test_truncated_zip_is_reported_corrupt, ...), checkpoint I/O on its own in
tests/test_models.py; here the checkpoint cases are the ones a repair meets."""
import math
import pytest
import torch, torch.nn as nn, torch.nn.functional as F

from asr_lit.engine import MIN_CALIB, repair
from asr_lit.models import CifarResNet
from asr_lit.checkpoints import load_checkpoint, save_checkpoint
from asr_lit.prune import apply_masks, channel_masks, nm_masks, prune_model
from asr_lit.sites import find_sites

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def r20():
    torch.manual_seed(0)
    dense = CifarResNet(20)
    x = torch.rand(MIN_CALIB, 3, 8, 8)
    dense.train()
    with torch.no_grad(): dense(x)
    return dense.eval(), prune_model(dense, 0.9), x


# --- models ----------------------------------------------------------------------------------------------------

def test_no_batchnorm(r20):
    _, _, x = r20
    no_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
    pruned = prune_model(no_bn, 0.5)
    for method in ('bn_only', 'asr', 'layerwise'):
        with pytest.raises(ValueError, match="no BatchNorm layers.*use recal='none'"): repair(pruned, no_bn, x, method)
    repaired, rep = repair(pruned, no_bn, x, 'asr', recal='none')          # what the message suggests runs
    assert any("no 'block' sites" in w for w in rep.warnings)


def test_different_structure(r20):
    dense, pruned, x = r20
    with pytest.raises(ValueError, match='differ in structure.*pass the dense model the pruned one was made from'):
        repair(pruned, CifarResNet(32), x, 'asr')
    with pytest.raises(ValueError, match='differ in structure'):
        repair(prune_model(CifarResNet(20, num_classes=5), 0.9), dense, x, 'bn_only')


def test_nan_inf_weights(r20):
    dense, pruned, x = r20
    for bad in (math.nan, math.inf):
        broken = prune_model(dense, 0.9)
        with torch.no_grad(): broken.layer2[0].conv1.weight_orig[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="pruned model has NaN or inf in 'layer2.0.conv1.weight_orig': reload it"):
            repair(broken, dense, x, 'asr')
        broken_dense = prune_model(dense, 0.0)
        with torch.no_grad(): broken_dense.bn1.running_var[0] = bad
        with pytest.raises(ValueError, match="dense model has NaN or inf in buffer 'bn1.running_var'"):
            repair(pruned, broken_dense, x, 'asr')
        with pytest.raises(ValueError, match='NaN or inf weights: fix or reload'): prune_model(broken, 0.5)


def test_untraceable_without_blocks():
    class Branchy(nn.Module):
        def __init__(self): super().__init__(); self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        def forward(self, x):
            y = self.bn(self.conv(x))
            return y if y.sum() > 0 else -y                        # data-dependent: torch.fx cannot trace it
    with pytest.raises(ValueError, match=r"does not trace.*is_residual_block = True.*site='bn'"): find_sites(Branchy(), 'block')
    assert [s.name for s in find_sites(Branchy(), 'bn')] == ['bn']

# --- calibration data ------------------------------------------------------------------------------------------

def test_calib_empty_or_too_small(r20):
    dense, pruned, x = r20
    with pytest.raises(ValueError, match='empty.*calib_sample'): repair(pruned, dense, x[:0], 'asr')
    with pytest.raises(ValueError, match=f'has 8 images; at least {MIN_CALIB} are needed'): repair(pruned, dense, x[:8], 'asr')
    with pytest.raises(TypeError, match='must be a tensor.*calib_sample'): repair(pruned, dense, [x[0], x[1], x[2]], 'asr')
    with pytest.raises(TypeError, match='must be a tensor'): repair(pruned, dense, x.numpy(), 'asr')


def test_calib_wrong_shape(r20):
    dense, pruned, x = r20
    with pytest.raises(ValueError, match=r'channels-last: use x.permute\(0, 3, 1, 2\)'):
        repair(pruned, dense, x.permute(0, 2, 3, 1).contiguous(), 'asr')
    with pytest.raises(ValueError, match=r'cannot run on the calibration batch of shape \(16, 8, 8\).*channels first'):
        repair(pruned, dense, x[:, 0], 'asr')                                    # greyscale without a channel dim
    with pytest.raises(ValueError, match=r'must be a batch \(N, C, H, W\)'): repair(pruned, dense, x.flatten(), 'asr')


def test_calib_wrong_dtype(r20):
    dense, pruned, x = r20
    with pytest.raises(TypeError, match=r'floats in \[0, 1\].*x.float\(\)/255'): repair(pruned, dense, (x*255).byte(), 'asr')
    with pytest.raises(TypeError, match='floats'): repair(pruned, dense, (x*255).long(), 'asr')
    _, rep = repair(pruned, dense, x.double(), 'asr')                                       # other float types are converted
    _, rep2 = repair(pruned, dense, x, 'asr')
    for k, g in rep.gains().items(): torch.testing.assert_close(g, rep2.gains()[k])


def test_calib_nan_inf_and_range(r20):
    dense, pruned, x = r20
    for bad in (math.nan, math.inf, -math.inf):
        y = x.clone(); y[3, 1, 2, 2] = bad
        with pytest.raises(ValueError, match='contain NaN or inf values; drop or fix'): repair(pruned, dense, y, 'asr')
    _, rep = repair(pruned, dense, (x - 0.5) / 0.25, 'asr')                     # already normalised: usable, but said
    assert any('not [0, 1]' in w and 'unnormalised' in w for w in rep.warnings)
    assert not any('not [0, 1]' in w for w in repair(pruned, dense, x, 'asr')[1].warnings)

# --- dead and constant channels ---------------------------------------------------------------------------------

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
    def forward(self, x): return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

class TinyRes(nn.Module):
    def __init__(self, c=6):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.blocks, self.fc = nn.Sequential(Block(c), Block(c)), nn.Linear(c, 3)
    def forward(self, x): return self.fc(self.blocks(F.relu(self.bn(self.stem(x)))).mean((2, 3)))


def _kill_channel(masks, model, ch):
    "Masks that also remove output channel `ch` of the stem and of every block's last conv: the channel is constant at every block output."
    masks = {k: v.clone() for k, v in masks.items()}
    for name in ['stem'] + [f'blocks.{i}.conv2' for i in range(2)]:
        w = model.get_submodule(name).weight
        masks.setdefault(name, torch.ones_like(w, dtype=torch.bool))[ch] = False
    return masks


def test_zero_variance_channels():
    torch.manual_seed(0)
    dense = TinyRes()
    x = torch.rand(MIN_CALIB, 3, 8, 8)
    with torch.no_grad(): dense.train()(x)
    dense.eval()
    masks = _kill_channel(channel_masks(dense, 0.0, include_first=True), dense, 2)
    pruned = apply_masks(dense, masks)                                           # channel 2 dead in the pruned model
    dead_dense = apply_masks(dense, _kill_channel({}, dense, 2))                 # ... and constant in the dense one too
    for d, what in ((dense, 'dead in the pruned model'), (dead_dense, 'constant in the dense model')):
        for method in ('naive', 'mean_std', 'layerwise', 'asr', 'corr', 'asr_corr'):
            for site in ('block', 'bn'):
                repaired, rep = repair(pruned, d, x, method, site=site)
                with torch.no_grad(): assert torch.isfinite(repaired(x)).all()
                for g in rep.gains().values(): assert torch.isfinite(g).all()
                assert torch.isfinite(torch.tensor(rep.channels['shift'].values.astype(float))).all()
                assert any(what in w for w in rep.warnings), (method, site, rep.warnings)
                if site == 'block': assert rep.channels.dead[rep.channels.channel == 2].all()

# --- pruning arguments -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('sparsity', [1.0, 1.5, -0.1, 90, math.nan, '0.9'])
def test_sparsity_outside_range(r20, sparsity):
    dense, _, _ = r20
    for kind in ('global', 'uniform', 'channel'):
        with pytest.raises(ValueError, match=r'sparsity must be a fraction in \[0, 1\).*Use 0.9 for 90%'):
            prune_model(dense, sparsity, kind=kind)


def test_nm_not_dividing(r20):
    dense, _, _ = r20
    with pytest.raises(ValueError, match="m=4 does not divide the input size 3 of layer 'conv1'.*exclude the layer"):
        nm_masks(dense, 2, 4, include_first=True)
    with pytest.raises(ValueError, match='m=5 does not divide the input size 16'): prune_model(dense, kind='nm', n=2, m=5)
    with pytest.raises(ValueError, match='0 < n <= m.*2:4 is n=2, m=4'): nm_masks(dense, 4, 2)
    with pytest.raises(ValueError, match='unknown sparsity kind'): prune_model(dense, 0.5, kind='2:4')


def test_masks_from_another_model(r20):
    dense, _, _ = r20
    masks = prune_model(CifarResNet(32), 0.9)
    with pytest.raises(ValueError, match='masks come from another model'):
        apply_masks(dense, {n: m.weight_mask.bool() for n, m in masks.named_modules() if hasattr(m, 'weight_mask')})

# --- methods and options -------------------------------------------------------------------------------------------

def test_unknown_method_site_recal(r20):
    dense, pruned, x = r20
    with pytest.raises(ValueError, match="unknown repair method 'magic'; choose one of.*'asr'"): repair(pruned, dense, x, 'magic')
    with pytest.raises(ValueError, match="unknown site kind 'relu'; choose one of"): repair(pruned, dense, x, 'asr', site='relu')
    with pytest.raises(ValueError, match="unknown recalibration order 'later'"): repair(pruned, dense, x, 'asr', recal='later')
    with pytest.raises(ValueError, match="unknown lambda rule 'mean'; choose one of"): repair(pruned, dense, x, 'asr', lam_rule='mean')

# --- checkpoints, as a repair meets them ------------------------------------------------------------------------------

def test_checkpoints(tmp_path, r20):
    dense, pruned, x = r20
    p = tmp_path/'r20.safetensors'
    save_checkpoint(dense, p, 'resnet20')
    with pytest.raises(FileNotFoundError, match='no checkpoint at .*save_checkpoint'): load_checkpoint(tmp_path/'r56.safetensors')
    with pytest.raises(ValueError, match="holds arch 'resnet20', expected 'resnet56'"): load_checkpoint(p, arch='resnet56')
    other = tmp_path/'r32.safetensors'
    save_checkpoint(CifarResNet(32), other, 'resnet32')
    with pytest.raises(ValueError, match='differ in structure'): repair(pruned, load_checkpoint(other)[0], x, 'asr')
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(ValueError, match='truncated or modified'): load_checkpoint(p)


def test_unknown_calib_augment():
    "compare_methods refuses an unknown calibration augmentation before any work."
    from asr_lit.evaluate import compare_methods
    from asr_lit.data import synthetic
    ds = synthetic(40, 4, size=8)
    with pytest.raises(ValueError, match=r"calib_augment must be one of \(None, 'crop_flip'\), got 'flip'"):
        compare_methods(CifarResNet(20), ds, ds, (0.5,), ('bn_only',), calib_augment='flip')
