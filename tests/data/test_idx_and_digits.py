"""The MNIST-format idx reader/writer, the idx folder loader, the Fashion-MNIST lookup, and sklearn digits."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from oblivio.data import DatasetError, load_dataset, load_fashion_mnist, load_idx_dataset, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = write_idx(tmp_path / f"a-idx3-ubyte{suffix}", array)
    is_gzip = path.read_bytes()[:2] == b"\x1f\x8b"
    assert is_gzip == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_header_bytes_are_big_endian(tmp_path):
    path = write_idx(tmp_path / "x", np.array([1, 258], dtype=np.int32))
    raw = path.read_bytes()
    assert raw[:4] == b"\x00\x00\x0c\x01"  # zero, int32 type code, one dimension
    assert struct.unpack(">I", raw[4:8]) == (2,)
    assert raw[8:] == b"\x00\x00\x00\x01\x00\x00\x01\x02"


def test_idx_gzip_is_detected_by_content_not_name(tmp_path):
    path = write_idx(tmp_path / "plain-name", np.ones((3, 2), np.uint8), compress=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert read_idx(path).tolist() == [[1, 1], [1, 1], [1, 1]]


def test_idx_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_idx(tmp_path / "nope")
    (tmp_path / "magic").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DatasetError, match="bad idx magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(b"\x00")
    with pytest.raises(DatasetError, match="too short"):
        read_idx(tmp_path / "short")
    full = write_idx(tmp_path / "full", np.arange(12, dtype=np.uint8).reshape(3, 4)).read_bytes()
    (tmp_path / "cut").write_bytes(full[:-3])
    with pytest.raises(DatasetError, match="header says shape \\(3, 4\\) \\(12 bytes\\) but 9 bytes follow"):
        read_idx(tmp_path / "cut")
    (tmp_path / "cut-header").write_bytes(full[:6])
    with pytest.raises(DatasetError, match="truncated idx header"):
        read_idx(tmp_path / "cut-header")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(full)[:-10])
    with pytest.raises(DatasetError, match="cannot read"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(ValueError, match="cannot be written"):
        write_idx(tmp_path / "u16", np.zeros(3, np.uint16))


def _write_mnist_folder(root, n_train=5, n_test=3, gz=True):
    ext = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    tr_x = rng.integers(0, 256, (n_train, 6, 7), dtype=np.uint8)
    te_x = rng.integers(0, 256, (n_test, 6, 7), dtype=np.uint8)
    write_idx(root / f"train-images-idx3-ubyte{ext}", tr_x)
    write_idx(root / f"train-labels-idx1-ubyte{ext}", np.arange(n_train, dtype=np.uint8) % 4)
    write_idx(root / f"t10k-images-idx3-ubyte{ext}", te_x)
    write_idx(root / f"t10k-labels-idx1-ubyte{ext}", np.array([3, 0, 1], dtype=np.uint8)[:n_test])
    return tr_x, te_x


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_loader(tmp_path, gz):
    tr_x, te_x = _write_mnist_folder(tmp_path, gz=gz)
    splits = load_dataset("mnist-idx", root=tmp_path, name="toy")
    assert splits.train.images.shape == (5, 1, 6, 7) and splits.train.images.dtype == torch.uint8
    assert torch.equal(splits.train.images[:, 0], torch.from_numpy(tr_x))
    assert torch.equal(splits.test.images[:, 0], torch.from_numpy(te_x))
    assert splits.train.labels.tolist() == [0, 1, 2, 3, 0] and splits.test.labels.tolist() == [3, 0, 1]
    assert splits.train.labels.dtype == torch.int64
    assert splits.classes == ("0", "1", "2", "3")  # inferred from the largest label
    assert splits.train.name == "toy/train"


def test_idx_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_idx_dataset(tmp_path / "none")
    _write_mnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2], np.uint8))
    with pytest.raises(DatasetError, match="3 images but 2 labels"):
        load_idx_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="no file t10k-labels-idx1-ubyte"):
        load_idx_dataset(tmp_path)


def test_fashion_mnist_root_lookup(tmp_path, monkeypatch):
    _write_mnist_folder(tmp_path, n_train=10, n_test=3)
    monkeypatch.setenv("OBLIVIO_FASHION_MNIST", str(tmp_path))
    splits = load_fashion_mnist()
    assert splits.name == "fashion-mnist" and splits.classes[0] == "T-shirt/top" and splits.num_classes == 10
    assert len(splits.train) == 10
    monkeypatch.setenv("OBLIVIO_FASHION_MNIST", str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist.*OBLIVIO_FASHION_MNIST"):
        load_fashion_mnist()


def test_digits(digits):
    assert digits.name == "digits" and digits.classes == tuple("0123456789")
    assert len(digits.train) + len(digits.test) == 1797
    assert digits.train.images.shape[1:] == (1, 8, 8) and digits.train.images.dtype == torch.float32
    assert float(digits.train.images.min()) == 0.0 and float(digits.train.images.max()) == 1.0
    test_share = digits.test.class_counts().float() / (digits.train.class_counts() + digits.test.class_counts())
    assert torch.all((test_share - 0.25).abs() < 0.01)  # per-class 25 % split


def test_digits_split_is_seeded():
    a = load_dataset("digits", seed=3)
    b = load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.test.images, c.test.images)
    assert len(load_dataset("digits", test_fraction=0.5).test) == pytest.approx(1797 / 2, abs=10)
