"Bad-input and edge-case tests for `asr_lit.data` (run with pytest); every test uses a temporary cache."
import io, pickle, zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asr_lit.data import (CIFAR10_CLASSES, ImageSet, cache_dir, calib_indices, calib_sample, cifar10, cifar100,
                          imagenette, shared_dir, stratified_subset, synthetic)


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    "Point the decoded-data cache at a temporary folder so tests never touch ~/.cache/asr_lit."
    c = tmp_path/'cache'
    monkeypatch.setenv('ASR_LIT_CACHE', str(c))
    return c


def _jpeg(colour, size=8, mode='RGB'):
    buf = io.BytesIO()
    Image.new(mode, (size, size), colour).save(buf, format='JPEG', quality=95)
    return buf.getvalue()


def _fake_cifar10_zip(path, per_class=2):
    "A tiny zip in the shared CIFAR-10 layout: {train,test}/<class>/<file>.jpg, all ten classes."
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as zf:
        for split in ('train', 'test'):
            for c, name in enumerate(CIFAR10_CLASSES):
                for i in range(per_class):
                    zf.writestr(f'{split}/{name}/{i:04d}.jpg', _jpeg((c*25, i*100, 50), size=32))
    return path


# --- paths -----------------------------------------------------------------------------------------

def test_cache_dir_env(tmp_cache):
    assert cache_dir() == tmp_cache and tmp_cache.is_dir()


def test_shared_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv('ASR_LIT_SHARED', str(tmp_path/'elsewhere'))
    assert shared_dir() == tmp_path/'elsewhere'   # returned even though it does not exist


# --- CIFAR-10 zip ----------------------------------------------------------------------------------

def test_missing_zip_says_where_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv('ASR_LIT_SHARED', str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        cifar10('test')
    msg = str(e.value)
    assert str(tmp_path/'data'/'cifar10-jpeg.zip') in msg
    assert 'ASR_LIT_SHARED' in msg and 'download=True' in msg and 'root=' in msg


def test_garbage_zip_is_reported_corrupt(tmp_path, monkeypatch):
    (tmp_path/'data').mkdir()
    (tmp_path/'data'/'cifar10-jpeg.zip').write_bytes(b'this is not a zip file' * 100)
    monkeypatch.setenv('ASR_LIT_SHARED', str(tmp_path))
    with pytest.raises(ValueError, match='corrupt') as e:
        cifar10('train')
    assert 'ce962c3636592f547756899545a76d9da96b647fe7452affc10474e033f56311' in str(e.value)
    assert 'sha256sum' in str(e.value)


def test_truncated_zip_is_reported_corrupt(tmp_path):
    good = _fake_cifar10_zip(tmp_path/'good.zip')
    bad = tmp_path/'cifar10-jpeg.zip'
    bad.write_bytes(good.read_bytes()[:len(good.read_bytes())//2])
    with pytest.raises(ValueError, match='corrupt'):
        cifar10('train', zip_path=bad)


def test_damaged_jpeg_inside_zip_is_reported_corrupt(tmp_path):
    p = tmp_path/'cifar10-jpeg.zip'
    with zipfile.ZipFile(p, 'w') as zf:
        for name in CIFAR10_CLASSES: zf.writestr(f'train/{name}/0000.jpg', _jpeg((1, 2, 3))[:20])
    with pytest.raises(ValueError, match='corrupt'):
        cifar10('train', zip_path=p)


def test_fake_cifar10_zip_loads_and_caches(tmp_path, tmp_cache):
    p = _fake_cifar10_zip(tmp_path/'cifar10-jpeg.zip')
    ds = cifar10('train', zip_path=p)
    assert len(ds) == 20 and ds.x.shape == (20, 3, 32, 32) and ds.x.dtype == torch.uint8
    assert ds.classes == CIFAR10_CLASSES and ds.counts().tolist() == [2]*10 and ds.split == 'train'
    assert list(tmp_cache.glob('cifar10-train-*.pt'))
    again = cifar10('train', zip_path=p)   # from the cache
    assert torch.equal(again.x, ds.x) and torch.equal(again.y, ds.y)


def test_cifar10_bad_split():
    with pytest.raises(ValueError, match='split must be one of'):
        cifar10('val')


def test_cifar10_root_missing_says_download(tmp_path):
    with pytest.raises(FileNotFoundError, match='download=True'):
        cifar10('train', root=tmp_path)


def test_cifar10_torchvision_format(tmp_path):
    d = tmp_path/'cifar-10-batches-py'; d.mkdir()
    rng = np.random.default_rng(0)
    for f in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        with open(d/f, 'wb') as fh:
            pickle.dump({b'data': rng.integers(0, 256, (3, 3072), dtype=np.uint8), b'labels': [0, 1, 9]}, fh)
    with open(d/'batches.meta', 'wb') as fh:
        pickle.dump({b'label_names': [c.encode() for c in CIFAR10_CLASSES]}, fh)
    tr, te = cifar10('train', root=tmp_path), cifar10('test', root=tmp_path)
    assert len(tr) == 15 and len(te) == 3 and tr.classes == CIFAR10_CLASSES and te.split == 'test'


# --- CIFAR-100 (torchvision format) ----------------------------------------------------------------

def _fake_cifar100(root, n_train=12, n_test=5):
    d = Path(root)/'cifar-100-python'; d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (('train', n_train), ('test', n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(d/split, 'wb') as fh:
            pickle.dump({b'data': data, b'fine_labels': [i % 100 for i in range(n)],
                         b'coarse_labels': [i % 20 for i in range(n)]}, fh)
    with open(d/'meta', 'wb') as fh:
        pickle.dump({b'fine_label_names': [f'c{i}'.encode() for i in range(100)],
                     b'coarse_label_names': [f'k{i}'.encode() for i in range(20)]}, fh)
    return data  # the test split's raw rows


def test_cifar100_fake_torchvision_format(tmp_path):
    raw_test = _fake_cifar100(tmp_path)
    tr, te = cifar100('train', root=tmp_path), cifar100('test', root=tmp_path)
    assert len(tr) == 12 and len(te) == 5 and len(tr.classes) == 100 and tr.classes[3] == 'c3'
    assert te.x.shape == (5, 3, 32, 32) and te.x.dtype == torch.uint8
    assert torch.equal(te.x[1, 0].flatten(), torch.from_numpy(raw_test[1, :1024]))   # red plane first
    assert te.y.tolist() == [0, 1, 2, 3, 4] and te.split == 'test'
    with pytest.raises(ValueError, match='training split'):
        calib_sample(te, 2)


def test_cifar100_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match='download=True'):
        cifar100('train', root=tmp_path)


def test_cifar100_garbage_pickle(tmp_path):
    _fake_cifar100(tmp_path)
    (tmp_path/'cifar-100-python'/'train').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='not a readable CIFAR pickle'):
        cifar100('train', root=tmp_path)


# --- Imagenette ------------------------------------------------------------------------------------

def _fake_imagenette_zip(path):
    "Three classes; one greyscale ('L') and one CMYK image among them; 40x40 pixels."
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as zf:
        for split, n in (('train', 4), ('val', 2)):
            for c, wnid in enumerate(['n01440764', 'n02102040', 'n03888257']):
                for i in range(n):
                    mode, colour = 'RGB', (200, 10*c, 10*i)
                    if (c, i) == (0, 0): mode, colour = 'L', 128
                    if (c, i) == (1, 0): mode, colour = 'CMYK', (0, 0, 0, 0)
                    zf.writestr(f'{split}/{wnid}/img_{i}.JPEG', _jpeg(colour, size=40, mode=mode))
    return path


def test_imagenette_greyscale_and_cmyk_become_rgb(tmp_path):
    p = _fake_imagenette_zip(tmp_path/'imagenette2-224-jpeg.zip')
    ds = imagenette('train', zip_path=p)
    assert ds.x.shape == (12, 3, 40, 40) and ds.counts().tolist() == [4, 4, 4]
    grey = ds.x[0].float()
    assert (grey - 128).abs().max() <= 2                 # the 'L' image, replicated into three channels
    assert (ds.x[4].float() - 255).abs().max() <= 2     # CMYK (0,0,0,0) is white


def test_imagenette_size_limit_and_honours_shared_env(tmp_path, monkeypatch):
    (tmp_path/'data').mkdir()
    _fake_imagenette_zip(tmp_path/'data'/'imagenette2-224-jpeg.zip')
    monkeypatch.setenv('ASR_LIT_SHARED', str(tmp_path))
    ds = imagenette('val', size=16, limit=3)
    assert ds.x.shape == (3, 3, 16, 16) and ds.counts().tolist() == [1, 1, 1]
    assert 'stratified 3 of 6' in ds.source and ds.split == 'val'


def test_imagenette_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv('ASR_LIT_SHARED', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='ASR_LIT_SHARED'):
        imagenette('val')
    with pytest.raises(ValueError, match='split must be one of'):
        imagenette('test')
    with pytest.raises(ValueError, match='size must be'):
        imagenette('val', size=0)
    with pytest.raises(ValueError, match='limit must be'):
        imagenette('val', limit=-1)


def test_imagenette_image_folder_root(tmp_path):
    for split in ('train', 'val'):
        for wnid in ('n01440764', 'n02102040'):
            (tmp_path/split/wnid).mkdir(parents=True)
            for i, sz in enumerate((30, 50)):
                (tmp_path/split/wnid/f'{i}.JPEG').write_bytes(_jpeg((9, 9, 9), size=sz, mode='RGB'))
    with pytest.raises(ValueError, match='size='):     # different sizes need resizing
        imagenette('val', root=tmp_path)
    ds = imagenette('val', root=tmp_path, size=24)
    assert ds.x.shape == (4, 3, 24, 24) and ds.classes == ['n01440764', 'n02102040']


# --- calibration sampler ---------------------------------------------------------------------------

def _as_split(ds, split):
    return ImageSet(ds.x, ds.y, ds.classes, ds.source, split)


@pytest.mark.parametrize('split', ['test', 'val'])
def test_calib_refuses_test_and_val(split):
    ds = _as_split(synthetic(40, 4, size=4), split)
    with pytest.raises(ValueError, match='never the test split'):
        calib_sample(ds, 8)


@pytest.mark.parametrize('n', [0, -3, 41])
def test_calib_refuses_bad_n(n):
    with pytest.raises(ValueError, match='n must be >= 1|use n <= 40'):
        calib_sample(synthetic(40, 4, size=4), n)


def test_calib_refuses_non_int_n():
    with pytest.raises(TypeError):
        calib_sample(synthetic(40, 4, size=4), 8.0)


@pytest.mark.parametrize('n', [1, 7, 12, 13, 40])
def test_calib_balanced_counts(n):
    ds = synthetic(40, 4, size=4)
    counts = ds.y[calib_indices(ds, n)].bincount(minlength=4)
    assert counts.sum() == n and counts.max() - counts.min() <= 1


def test_calib_balanced_with_unequal_classes():
    ds = synthetic(40, 4, size=4)
    keep = torch.cat([(ds.y == 0).nonzero().flatten()[:2], (ds.y != 0).nonzero().flatten()])
    small = ds.subset(keep)                       # class 0 has only 2 images
    counts = small.y[calib_indices(small, 20)].bincount(minlength=4)
    assert counts.tolist()[0] == 2 and counts.sum() == 20 and sorted(counts.tolist()[1:]) == [6, 6, 6]


def test_calib_seed_determinism_and_no_repeats():
    ds = synthetic(200, 10, size=4)
    for balanced in (True, False):
        a, b = calib_sample(ds, 50, seed=7, balanced=balanced), calib_sample(ds, 50, seed=7, balanced=balanced)
        assert torch.equal(a, b) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
        assert not torch.equal(calib_indices(ds, 50, seed=7, balanced=balanced), calib_indices(ds, 50, seed=8, balanced=balanced))
        assert len(calib_indices(ds, 50, seed=7, balanced=balanced).unique()) == 50


def test_stratified_subset():
    ds = synthetic(100, 4, size=4)
    assert stratified_subset(ds, None) is ds and stratified_subset(ds, 100) is ds
    s = stratified_subset(ds, 20)
    assert s.counts().tolist() == [5]*4 and 'stratified 20 of 100' in s.source
    with pytest.raises(ValueError, match='between 1 and'):
        stratified_subset(ds, 101)


def test_imageset_validation():
    with pytest.raises(TypeError, match='uint8'):
        ImageSet(torch.zeros(2, 3, 4, 4), torch.zeros(2), ['a'], 's', 'train')
    with pytest.raises(ValueError, match='one label per image'):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3), ['a'], 's', 'train')
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 1\)'):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ['a'], 's', 'train')
    with pytest.raises(ValueError, match='bs must be'):
        next(synthetic(8, 2, size=4).batches(0))


def test_calib_augment():
    "An augmented draw: the plain draw's images, each one of its 2*(2*4+1)^2 shifted/flipped crops, seeded; the bad name is refused."
    import torch.nn.functional as F
    from asr_lit.data import random_crop_flip, CALIB_AUGMENTS
    ds = synthetic(40, 4, size=6)
    plain, aug = calib_sample(ds, 12, seed=3), calib_sample(ds, 12, seed=3, augment='crop_flip')
    assert aug.shape == plain.shape and aug.dtype == torch.float32
    assert torch.equal(aug, calib_sample(ds, 12, seed=3, augment='crop_flip'))
    assert not torch.equal(aug, plain)
    for p, a in zip((plain * 255).round().to(torch.uint8), aug):
        ip = F.pad(p, (4, 4, 4, 4))
        crops = [c for dy in range(9) for dx in range(9) for c in (ip[:, dy:dy+6, dx:dx+6], ip[:, dy:dy+6, dx:dx+6].flip(-1))]
        assert any(torch.equal(c.float() / 255, a) for c in crops)
    assert CALIB_AUGMENTS == (None, 'crop_flip')
    with pytest.raises(ValueError, match=r"augment must be one of \(None, 'crop_flip'\)"): calib_sample(ds, 8, augment='rrc')
    with pytest.raises(ValueError, match='training split'): calib_sample(_as_split(ds, 'test'), 8, augment='crop_flip')
