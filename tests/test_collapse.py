"The signal-collapse measurements work from the installed module, not only inside their notebook."
import copy
import torch
from asr_lit.models import CifarResNet
from asr_lit.prune import prune_model
from asr_lit.collapse import retained_variance, layer_retained

def test_layer_retained_from_module():
    torch.manual_seed(0)
    dense = CifarResNet(8).eval()
    x = torch.rand(32, 3, 32, 32)
    ch = retained_variance(dense, prune_model(dense, 0.9), x, site='bn')
    lay = layer_retained(ch)
    assert len(lay) == ch.site.nunique() == 7  # 7 BatchNorms in ResNet-8
    assert ((lay.near_dead >= 0) & (lay.near_dead <= 1)).all() and (lay.iqr_log10 >= 0).all()
    same = layer_retained(retained_variance(dense, dense, x, site='bn'))
    assert torch.allclose(torch.tensor(same.layer_retained.values), torch.ones(len(same), dtype=torch.float64))
    assert (same.near_dead == 0).all()

def test_retained_variance_values():
    "Halving the first convolution's weights keeps exactly a quarter of the variance after its BatchNorm (eval mode: an affine map); a zeroed filter keeps none."
    torch.manual_seed(0)
    dense = CifarResNet(8).eval()
    x = torch.rand(32, 3, 32, 32)
    half = copy.deepcopy(dense)
    conv = next(m for m in half.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad(): conv.weight.mul_(0.5); conv.weight[3] = 0
    ch = retained_variance(dense, half, x, site='bn')
    first = ch[ch.site == ch.site.iloc[0]]
    assert len(first) == conv.out_channels == 16
    torch.testing.assert_close(torch.tensor(first.retained.values[[c for c in range(16) if c != 3]]), torch.full((15,), 0.25, dtype=torch.float64), rtol=1e-4, atol=0)
    assert first.retained.values[3] == 0
    lay = layer_retained(ch).set_index('site').loc[first.site.iloc[0]]
    assert lay.near_dead == 1/16
    expect = 0.25 * first.dense_var.drop(first.index[3]).sum() / first.dense_var.sum()
    assert abs(lay.layer_retained - expect) < 1e-5, (lay.layer_retained, expect)
