"Tests of asr_lit.models: registry, pretrained CIFAR ResNets, checkpoint I/O and their failure messages."
import copy, pickle, shutil
from pathlib import Path

import pytest
import torch, torch.nn as nn

from asr_lit.data import shared_dir
from asr_lit.models import MODELS, BasicBlock, CifarResNet, Normalize, create_model
from asr_lit.checkpoints import PRETRAINED_CIFAR, available_models, load_checkpoint, load_model, load_pretrained_cifar_resnet, save_checkpoint

AKA = shared_dir()/'weights'/'cifar10-resnet-akamaster'
needs_weights = pytest.mark.skipif(not any(AKA.glob('resnet20-*.th')), reason=f"no akamaster weights in {AKA}")

def n_of(model, cls): return sum(isinstance(m, cls) for m in model.modules())

# --- registry ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', list(MODELS))
def test_forward_shape(name):
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad(): out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert isinstance(next(model.modules()), nn.Module)
    assert isinstance(model.normalize, Normalize)  # every model normalises its own [0, 1] input
    assert not any(k.startswith('normalize.') for k in model.state_dict())
    assert not any(getattr(m, 'inplace', False) for m in model.modules())

def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match='valid names: resnet20, resnet32') as e: create_model('resnet18')
    for name in MODELS: assert name in str(e.value)
    with pytest.raises(ValueError, match='valid names'): load_model('no_such_model')

def test_markers():
    counts = {'resnet20': (9, 0), 'cifar_resnet18': (8, 0), 'cifar_resnet50': (16, 0), 'cifar_vgg16_bn': (0, 0),
              'cifar_densenet121': (0, 58), 'tv_resnet18': (8, 0), 'tv_densenet121': (0, 58), 'tv_mobilenet_v2': (10, 0)}
    for name, (res, dense) in counts.items():
        m = create_model(name)
        assert sum(getattr(x, 'is_residual_block', False) for x in m.modules()) == res, name
        assert sum(getattr(x, 'is_dense_layer', False) for x in m.modules()) == dense, name

def test_cifar_resnet_structure_and_copy():
    m = CifarResNet(20)
    assert [n_of(m, nn.Conv2d), n_of(m, nn.BatchNorm2d), n_of(m, nn.Linear)] == [19, 19, 1]
    assert sum(p.numel() for p in m.parameters()) == 269_722
    x = torch.rand(2, 3, 32, 32)
    m.eval()
    for c in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))): assert torch.equal(c(x), m(x))
    with pytest.raises(ValueError, match='6n\\+2'): CifarResNet(22)
    with pytest.raises(ValueError, match="'A' or 'B'"): BasicBlock(16, 32, 2, option='C')

# --- pretrained akamaster ResNets -----------------------------------------------------------------------------

@needs_weights
def test_akamaster_resnet20_strict():
    path = next(AKA.glob('resnet20-*.th'))
    sd = {k.removeprefix('module.'): v for k, v in torch.load(path, map_location='cpu', weights_only=True)['state_dict'].items()}
    m = CifarResNet(20)
    res = m.load_state_dict(sd, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    m = load_pretrained_cifar_resnet(20)
    assert not m.training
    assert [n_of(m, nn.Conv2d), n_of(m, nn.BatchNorm2d)] == [19, 19]
    assert torch.equal(m.conv1.weight, sd['conv1.weight'])
    assert 'resnet20' in available_models() and not load_model('resnet20').training

def test_missing_weights_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='akamaster/pytorch_resnet_cifar10') as e:
        load_pretrained_cifar_resnet(20, root=tmp_path/'nowhere')
    assert str(tmp_path/'nowhere') in str(e.value)
    with pytest.raises(FileNotFoundError, match='no resnet56-<hash>.th'): load_pretrained_cifar_resnet(56, root=tmp_path)

@needs_weights
def test_corrupt_pretrained(tmp_path):
    src = next(AKA.glob('resnet20-*.th'))
    dst = tmp_path/src.name
    shutil.copy(src, dst)
    data = bytearray(dst.read_bytes())
    for i in range(1000, 1010): data[i] ^= 0xFF
    dst.write_bytes(data)
    with pytest.raises(ValueError, match='corrupt or modified'): load_pretrained_cifar_resnet(20, root=tmp_path)
    dst.write_bytes(src.read_bytes()[:-10])  # truncated
    with pytest.raises(ValueError, match='corrupt or modified'): load_pretrained_cifar_resnet(20, root=tmp_path)

# --- checkpoint I/O ------------------------------------------------------------------------------------------

def _trained_like(model):
    "Make BN running statistics non-trivial."
    model.train()
    with torch.no_grad():
        for _ in range(2): model(torch.rand(4, 3, 32, 32))
    return model.eval()

def test_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = _trained_like(create_model('resnet20', num_classes=5))
    x = torch.rand(3, 3, 32, 32)
    card = save_checkpoint(m, tmp_path/'a.safetensors', 'resnet20', data='synthetic', accuracy=0.5)
    assert (tmp_path/'a.json').is_file()
    m2, card2 = load_checkpoint(tmp_path/'a.safetensors', arch='resnet20')
    assert card2 == card and card['num_classes'] == 5 and card['accuracy'] == 0.5 and card['data'] == 'synthetic'
    assert not m2.training and torch.equal(m2(x), m(x))
    card = save_checkpoint(m, tmp_path/'h.safetensors', 'resnet20', half=True)
    m3, _ = load_checkpoint(tmp_path/'h.safetensors')
    assert m3.conv1.weight.dtype == torch.float32
    assert m3.bn1.num_batches_tracked.dtype == torch.int64 and m3.bn1.num_batches_tracked.item() == 2
    y, y3 = m(x), m3(x)
    assert (y - y3).abs().max() <= 2e-2 * y.abs().max()

def test_checkpoint_truncated(tmp_path):
    p = tmp_path/'a.safetensors'
    save_checkpoint(CifarResNet(20), p, 'resnet20')
    p.write_bytes(p.read_bytes()[:-64])
    with pytest.raises(ValueError, match='is truncated or modified: sha256'): load_checkpoint(p)

def test_checkpoint_arch_mismatch(tmp_path):
    p = tmp_path/'a.safetensors'
    save_checkpoint(CifarResNet(20), p, 'resnet20')
    with pytest.raises(ValueError, match="expected 'resnet32'"): load_checkpoint(p, arch='resnet32')
    with pytest.raises(ValueError, match='does not match'): save_checkpoint(CifarResNet(20), tmp_path/'b.safetensors', 'resnet32')
    with pytest.raises(ValueError, match='unknown arch'): save_checkpoint(CifarResNet(20), tmp_path/'c.safetensors', 'resnet21')

def test_checkpoint_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.safetensors'): load_checkpoint(tmp_path/'nothing.safetensors')
    p = tmp_path/'a.safetensors'
    save_checkpoint(CifarResNet(20), p, 'resnet20')
    (tmp_path/'a.json').unlink()
    with pytest.raises(FileNotFoundError, match='a.json'): load_checkpoint(p)

def test_load_model_weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('ASR_LIT_WEIGHTS', str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no trained weights for 'cifar_vgg16_bn' are in the repo yet"):
        load_model('cifar_vgg16_bn')
    assert 'cifar_vgg16_bn' not in available_models()
    save_checkpoint(CifarResNet(20), tmp_path/'resnet20_c10.safetensors', 'resnet20')
    assert 'resnet20_c10' in available_models()
    assert isinstance(load_model('resnet20_c10'), CifarResNet)
    save_checkpoint(CifarResNet(20), tmp_path/'cifar_vgg16_bn.safetensors', 'resnet20')
    with pytest.raises(ValueError, match="expected 'cifar_vgg16_bn'"): load_model('cifar_vgg16_bn')
