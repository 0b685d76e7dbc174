"The signal-collapse measurements work from the installed module, not only inside their notebook."
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
