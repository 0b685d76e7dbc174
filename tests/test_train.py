"Training: the augmentation's properties, bad input, the command line, and the committed checkpoints' cards."
import json, subprocess, sys
from pathlib import Path
import pytest, torch
from hypothesis import given, settings, strategies as st
from asr_lit.data import ImageSet, synthetic, cifar10, stratified_subset, random_crop_flip
from asr_lit.models import CifarResNet
from asr_lit.checkpoints import weights_dir, load_model
from asr_lit.train import random_resized_crop_flip, train_model, train_checkpoint, card_test_set
from asr_lit.evaluate import accuracy

BIN = Path(sys.executable).parent

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), pad=st.integers(0, 5), seed=st.integers(0, 2**31))
def test_crop_flip_is_a_shifted_window(n, c, h, w, pad, seed):
    x = torch.randint(1, 256, (n, c, h, w), dtype=torch.uint8)
    out = random_crop_flip(x, pad, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    xp = torch.nn.functional.pad(x, (pad,)*4)
    for i in range(n):  # each image is one window of its padded input, maybe flipped
        wins = [xp[i, :, dy:dy+h, dx:dx+w] for dy in range(2*pad+1) for dx in range(2*pad+1)]
        assert any(torch.equal(out[i], v) or torch.equal(out[i], v.flip(-1)) for v in wins)

def test_crop_flip_pad0_keeps_pixels_per_row():
    x = torch.rand(8, 3, 5, 7)
    out = random_crop_flip(x, 0, torch.Generator().manual_seed(1))
    assert torch.equal(out.sort(-1).values, x.sort(-1).values)

def test_crop_flip_bad_input():
    with pytest.raises(ValueError, match='pad must be >= 0'): random_crop_flip(torch.zeros(1, 1, 4, 4), -1)
    with pytest.raises(ValueError, match='expected a batch'): random_crop_flip(torch.zeros(4, 4), 1)

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(2, 20), w=st.integers(2, 20), size=st.integers(1, 24), seed=st.integers(0, 2**31))
def test_resized_crop_stays_within_each_image(n, c, h, w, size, seed):
    x = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8)
    out = random_resized_crop_flip(x, size, generator=torch.Generator().manual_seed(seed))
    assert out.shape == (n, c, size, size) and out.dtype == torch.float32
    lo, hi = (v.float()[..., None, None] for v in x.flatten(2).aminmax(dim=2))   # bilinear: between each channel's extremes
    assert (out >= lo - 1e-3).all() and (out <= hi + 1e-3).all()
    flat = torch.full((n, c, h, w), 7, dtype=torch.uint8)
    torch.testing.assert_close(random_resized_crop_flip(flat, size, generator=torch.Generator().manual_seed(seed)), torch.full((n, c, size, size), 7.))

@pytest.mark.parametrize('kw,msg', [(dict(epochs=0), 'epochs must be >= 1'), (dict(bs=1), 'BatchNorm needs a batch'),
                                    (dict(bs=1000), 'fewer than one batch'), (dict(aug='mixup'), 'aug must be one of')])
def test_train_model_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg): train_model(CifarResNet(8), synthetic(64), progress=False, **kw)

def test_train_model_refuses_test_split():
    s = synthetic(64)
    with pytest.raises(ValueError, match="refusing to train on the 'test' split"):
        train_model(CifarResNet(8), ImageSet(s.x, s.y, s.classes, 'held out', 'test'), progress=False)

def test_train_checkpoint_bad_arguments():
    with pytest.raises(ValueError, match='unknown arch'): train_checkpoint('resnet21')
    with pytest.raises(ValueError, match='unknown data'): train_checkpoint('tv_resnet18', data='imagenet')
    with pytest.raises(TypeError, match='unknown recipe settings'): train_checkpoint('resnet20', lrr=0.1)

def test_train_checkpoint_card(tmp_path):
    card = train_checkpoint('plain20', 'p', epochs=1, n_monitor=None, out_dir=tmp_path, train=synthetic(128, seed=1),
                            test=synthetic(50, seed=2), device='cpu', progress=False, bs=32)
    saved = json.loads((tmp_path/'p.json').read_text())
    assert saved == card and card['arch'] == 'plain20' and card['dtype'] == 'float16'
    for k in ('data', 'recipe', 'epochs', 'seed', 'accuracy', 'accuracy_fp32', 'test_data', 'sha256', 'train_seconds'): assert k in card
    log = (tmp_path/'p.log.csv').read_text().splitlines()
    assert log[0].startswith('epoch,size,lr,train_loss,train_acc,test_acc,seconds') and len(log) == 2

def test_cli_help_and_bad_arch():
    assert '--epochs' in subprocess.run([str(BIN/'asr_train'), '--help'], capture_output=True, text=True).stdout
    r = subprocess.run([str(BIN/'asr_train'), 'resnet21'], capture_output=True, text=True)
    assert r.returncode == 2 and 'unknown arch' in r.stderr, r
    r = subprocess.run([str(BIN/'asr_train'), 'resnet20', '--sizes', '16x2'], capture_output=True, text=True)
    assert r.returncode == 2 and 'side:epochs pairs' in r.stderr, r
    r = subprocess.run([str(BIN/'asr_train'), 'resnet20', '--epochs', '3', '--sizes', '16:1,32:1', '--n_train', '64'], capture_output=True, text=True)
    assert r.returncode == 2 and 'one image side per epoch' in r.stderr, r

CHECKPOINTS = sorted(p.stem for p in weights_dir().glob('*.safetensors'))

def test_trained_models_committed():
    assert {'resnet20-jpeg-s0', 'plain20-jpeg-s0', 'cifar_resnet18-jpeg-s0', 'cifar_vgg16_bn-jpeg-s0', 'cifar_resnet50-jpeg-s0', 'tv_resnet18-imagenette128-s0',
            'tv_resnet50-imagenette128-s0', 'cifar_densenet121-jpeg-s0'} <= set(CHECKPOINTS), CHECKPOINTS

@pytest.mark.parametrize('name', CHECKPOINTS)
def test_checkpoint_reproduces_card(name):
    card = json.loads((weights_dir()/f'{name}.json').read_text())
    test = card_test_set(card)
    assert card['test_data'].split(' (')[0] == test.source.split(' (')[0], (card['test_data'], test.source)
    if 'subset_accuracy' in card:   # the card's stratified subset: cheap for the large models too
        sub = stratified_subset(test, card['subset']['n'], card['subset']['seed'])
        got, want = accuracy(load_model(name), sub, device='cpu', progress=False), card['subset_accuracy']
    else: got, want = accuracy(load_model(name), test, device='cpu', progress=False), card['accuracy']
    assert abs(got - want) <= 0.002, f"{name}: measured {100*got:.2f}%, card says {100*want:.2f}%"

def test_cli_tiny_run_exits_zero(tmp_path):
    r = subprocess.run([str(BIN/'asr_train'), 'resnet20', '--sizes', '16:1,32:1', '--resume', '--n_train', '512', '--n_test', '500', '--bs', '64', '--out', str(tmp_path),
                        '--device', 'cpu'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert 'test accuracy' in r.stdout and (tmp_path/'resnet20-jpeg-s0.safetensors').is_file()
    card = json.loads((tmp_path/'resnet20-jpeg-s0.json').read_text())
    assert card['epochs'] == 2 and card['sizes'] == '16:1,32:1', card
    assert 'stratified 500 of 10000' in card['test_data'] and card['subset']['n'] == 500, card   # --n_test: the card says what it measured on
    assert not list(tmp_path.glob('*.resume.pt*')), list(tmp_path.iterdir())   # the state goes once the checkpoint is written
