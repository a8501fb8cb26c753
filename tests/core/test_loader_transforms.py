import pytest
import torch

from oblivio.data import Augment, ImageDataset, TensorLoader, ZipLoader, stratified_sample
from oblivio.data.base import DatasetError
from oblivio.data.transforms import center_crop_resize, hflip, random_crop, vflip


def _ds(n=10, dtype=torch.uint8):
    images = (torch.arange(n * 16) % 256).reshape(n, 1, 4, 4).to(dtype)
    return ImageDataset(images, torch.arange(n) % 2, ("a", "b"))


def test_batches_cover_dataset_once_and_scale_uint8():
    ds = _ds()
    batches = list(TensorLoader(ds, batch_size=4, shuffle=True, seed=3))
    idx = torch.cat([b.index for b in batches])
    assert sorted(idx.tolist()) == list(range(10))
    b = batches[0]
    assert torch.allclose(b.x, ds.images[b.index].float() / 255)
    assert torch.equal(b.y, ds.labels[b.index])


def test_epoch_order_depends_on_seed_and_epoch_only():
    ds = _ds(50)
    a = TensorLoader(ds, batch_size=50, shuffle=True, seed=1)
    b = TensorLoader(ds, batch_size=50, shuffle=True, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert torch.equal(next(iter(a)).index, next(iter(b)).index)
    a.set_epoch(3)
    b.set_epoch(4)
    assert not torch.equal(next(iter(a)).index, next(iter(b)).index)
    c = TensorLoader(ds, batch_size=50, shuffle=True, seed=2)
    c.set_epoch(3)
    a.set_epoch(3)
    assert not torch.equal(next(iter(a)).index, next(iter(c)).index)


def test_drop_last_fraction_and_label_override():
    ds = _ds(10)
    assert len(TensorLoader(ds, batch_size=4, drop_last=True)) == 2
    half = TensorLoader(ds, batch_size=100, fraction=0.5, seed=0)
    assert next(iter(half)).x.shape[0] == 5
    override = torch.ones(10, dtype=torch.long)
    assert (next(iter(TensorLoader(ds, batch_size=10, labels=override))).y == 1).all()
    with pytest.raises(DatasetError):
        TensorLoader(ds, labels=torch.ones(3, dtype=torch.long))


def test_zip_loader_cycles_small_loader():
    big, small = _ds(12), _ds(3)
    z = ZipLoader(
        {"retain": TensorLoader(big, batch_size=2), "forget": TensorLoader(small, batch_size=2)}, primary="retain"
    )
    steps = list(z)
    assert len(steps) == 6
    assert all(set(s) == {"retain", "forget"} for s in steps)


def test_random_crop_matches_per_image_reference():
    x = torch.rand(6, 2, 5, 5)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, generator=g)
    g2 = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (6,), generator=g2)
    dx = torch.randint(0, 5, (6,), generator=g2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 5])


def test_flips_and_center_crop():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(hflip(x)[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert torch.equal(vflip(x)[0, 0, :, 0], torch.tensor([12.0, 8.0, 4.0, 0.0]))
    assert center_crop_resize(x, fraction=1.0).allclose(x)
    c = center_crop_resize(torch.ones(2, 3, 10, 10), fraction=0.9)
    assert c.shape == (2, 3, 10, 10) and torch.allclose(c, torch.ones_like(c))


def test_augment_parse():
    assert Augment.parse("crop4+flip") == Augment(4, True)
    assert Augment.parse("none") == Augment()
    assert not Augment.parse(None).active
    with pytest.raises(ValueError, match="unknown augmentation"):
        Augment.parse("rotate")


def test_stratified_sample_keeps_class_proportions(digits):
    pos = stratified_sample(digits.train, 200, seed=0)
    assert len(pos) == 200 and len(set(pos.tolist())) == 200
    counts = torch.bincount(digits.train.labels[pos], minlength=10)
    assert counts.min() >= 18 and counts.max() <= 22


def test_dataset_validation_errors():
    with pytest.raises(DatasetError, match="labels span"):
        ImageDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0, 5]), ("a", "b"))
    with pytest.raises(DatasetError, match="2 images but 3 labels"):
        ImageDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1, 1]), ("a", "b"))
    ds = _ds(5)
    assert ds.positions_of_ids([3, 1]).tolist() == [3, 1]
    with pytest.raises(DatasetError, match="unknown sample ids"):
        ds.positions_of_ids([7])
