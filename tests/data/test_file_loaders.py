"""File loaders (CIFAR pickles, SVHN .mat, image folders, .npz / in-memory arrays) on tiny files written here.

Every test writes files in the real on-disk format, then checks exact values: pixel positions, channel order,
label mapping, class names and groups; and that missing, corrupt and malicious files fail with DatasetError.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oblivio.data import (
    DATASETS,
    DatasetError,
    from_arrays,
    load_cifar10,
    load_cifar100,
    load_dataset,
    load_image_folder,
    load_npz,
    load_svhn,
)

# ----------------------------------------------------------------------------------------------- CIFAR

CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def _cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _write_cifar10(folder: Path, per_batch: int = 2, protocol: int = 2) -> dict[str, np.ndarray]:
    """Five train batches and a test batch with bytes keys; the first train image has a red pixel at (0, 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = {}
    for i in range(1, 6):
        data = _cifar_rows(per_batch, seed=i)
        if i == 1:
            data[0, :] = 0
            data[0, 0] = 255  # red plane, row 0, col 0
            data[0, 1024 + 32 * 2 + 5] = 200  # green plane, row 2, col 5
            data[0, 2048 + 32 * 31 + 31] = 100  # blue plane, row 31, col 31
        labels = [(i + j) % 10 for j in range(per_batch)]
        _dump(
            folder / f"data_batch_{i}",
            {b"batch_label": b"training batch", b"data": data, b"labels": labels, b"filenames": [b"x.png"] * per_batch},
            protocol,
        )
        rows[f"data_batch_{i}"] = data
    test = _cifar_rows(3, seed=9)
    _dump(folder / "test_batch", {b"data": test, b"labels": [9, 0, 4]}, protocol)
    rows["test_batch"] = test
    _dump(folder / "batches.meta", {b"label_names": CIFAR10_NAMES, b"num_vis": 3072}, protocol)
    return rows


def _write_cifar100(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fine = [f"fine{i}".encode() for i in range(100)]
    coarse = [f"coarse{i}".encode() for i in range(20)]
    _dump(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": coarse})
    train = _cifar_rows(4, seed=1)
    train[1, :] = 0
    train[1, 1024 + 7] = 255  # green plane, row 0, col 7 of image 1
    _dump(folder / "train", {b"data": train, b"fine_labels": [99, 0, 50, 3], b"coarse_labels": [19, 0, 10, 2]})
    _dump(folder / "test", {b"data": _cifar_rows(2, seed=2), b"fine_labels": [7, 8], b"coarse_labels": [1, 1]})


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_layout_labels_and_names(tmp_path, protocol):
    rows = _write_cifar10(tmp_path / "cifar-10-batches-py", protocol=protocol)
    splits = load_cifar10(tmp_path)  # the parent folder is accepted ...
    same = load_cifar10(tmp_path / "cifar-10-batches-py")  # ... and so is the batches folder itself
    assert torch.equal(splits.train.images, same.train.images)

    assert splits.train.images.shape == (10, 3, 32, 32) and splits.train.images.dtype == torch.uint8
    assert splits.test.images.shape == (3, 3, 32, 32)
    assert splits.train.labels.dtype == torch.int64
    first = splits.train.images[0]
    assert first[:, 0, 0].tolist() == [255, 0, 0]  # pure red: channel 0 is the first plane
    assert first[:, 2, 5].tolist() == [0, 200, 0]
    assert first[:, 31, 31].tolist() == [0, 0, 100]
    # batches are concatenated in order 1..5, rows reshape to [3, 32, 32]
    assert torch.equal(splits.train.images[2], torch.from_numpy(rows["data_batch_2"][0].reshape(3, 32, 32)))
    assert splits.train.labels.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert splits.test.labels.tolist() == [9, 0, 4]
    assert splits.classes[:3] == ("airplane", "automobile", "bird") and splits.num_classes == 10
    assert splits.train.ids.tolist() == list(range(10))


def test_cifar100_fine_and_coarse(tmp_path):
    _write_cifar100(tmp_path / "cifar-100-python")
    fine = load_cifar100(tmp_path)
    assert fine.num_classes == 100 and fine.classes[99] == "fine99"
    assert fine.train.labels.tolist() == [99, 0, 50, 3]
    assert fine.train.images[1][:, 0, 7].tolist() == [0, 255, 0]
    coarse = load_dataset("cifar100", root=tmp_path / "cifar-100-python", label_type="coarse")
    assert coarse.num_classes == 20 and coarse.classes[19] == "coarse19"
    assert coarse.train.labels.tolist() == [19, 0, 10, 2] and coarse.test.labels.tolist() == [1, 1]
    with pytest.raises(ValueError, match="fine.*coarse"):
        load_cifar100(tmp_path, label_type="medium")  # type: ignore[arg-type]


def test_cifar_missing_folder_and_files(tmp_path):
    with pytest.raises(DatasetError, match=r"cs\.toronto\.edu/~kriz/cifar\.html") as err:
        load_cifar10(tmp_path)
    assert "extract" in str(err.value) and "test_batch" in str(err.value)
    _write_cifar10(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="data_batch_4 is missing"):
        load_cifar10(tmp_path)
    with pytest.raises(DatasetError, match="CIFAR-100"):
        load_cifar100(tmp_path)


def test_cifar_truncated_and_malformed(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    raw = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="data_batch_3.*(corrupt|truncated)"):
        load_cifar10(folder)

    _write_cifar10(folder)
    _dump(folder / "test_batch", {b"data": _cifar_rows(3, 0), b"labels": [1, 2]})
    with pytest.raises(DatasetError, match="3 images but 2"):
        load_cifar10(folder)

    _dump(folder / "test_batch", {b"data": np.zeros((3, 1024), np.uint8), b"labels": [1, 2, 3]})
    with pytest.raises(DatasetError, match=r"\[N, 3072\]"):
        load_cifar10(folder)

    _dump(folder / "test_batch", {b"labels": [1, 2, 3]})
    with pytest.raises(DatasetError, match="no 'data' entry"):
        load_cifar10(folder)

    _dump(folder / "test_batch", {b"data": _cifar_rows(1, 0), b"labels": [10]})
    with pytest.raises(DatasetError, match="only 10 classes"):
        load_cifar10(folder)


def _py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch assembled opcode by opcode the way Python 2's cPickle wrote the real CIFAR files.

    Keys and raw bytes are Python 2 ``str`` (SHORT_BINSTRING / BINSTRING) and the array is rebuilt through
    ``numpy.core.multiarray._reconstruct``, the pre-numpy-2 module name.
    """

    def py2_str(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b

    n, width = data.shape
    out = b"\x80\x02}(" + py2_str(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + py2_str(b"b") + b"\x87R("
    out += b"K\x01M" + struct.pack("<H", n) + b"M" + struct.pack("<H", width) + b"\x86"
    out += b"cnumpy\ndtype\n" + py2_str(b"u1") + b"K\x00K\x01\x87R(K\x03" + py2_str(b"|")
    out += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"  # dtype state, then BUILD
    out += b"\x89T" + struct.pack("<I", data.nbytes) + data.tobytes() + b"tb"  # not Fortran, raw bytes, BUILD
    out += py2_str(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return out + b"u."


def test_cifar10_reads_python2_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    data = _cifar_rows(2, seed=5)
    blob = _py2_batch(data, [7, 3])
    pickletools.dis(blob, out=io.StringIO())  # a well-formed pickle
    (folder / "test_batch").write_bytes(blob)
    meta = b"\x80\x02}(U\x0blabel_names](" + b"".join(b"U" + bytes([len(c)]) + c for c in CIFAR10_NAMES) + b"eu."
    (folder / "batches.meta").write_bytes(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy.core deprecation warning either
        splits = load_cifar10(folder)
    assert splits.test.labels.tolist() == [7, 3] and splits.classes[-1] == "truck"
    assert torch.equal(splits.test.images, torch.from_numpy(data.reshape(2, 3, 32, 32)))


class _Evil:
    """Unpickling this object would run ``os.system``."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


class _EvilEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("payload", [_Evil(), _EvilEval()])
def test_cifar_malicious_pickle_is_rejected(tmp_path, monkeypatch, payload, protocol):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    _dump(folder / "batches.meta", {b"label_names": CIFAR10_NAMES, b"x": payload}, protocol)
    with pytest.raises(DatasetError, match=r"refusing global ((posix|os|nt)\.system|(__builtin__|builtins)\.eval)"):
        load_cifar10(folder)
    assert not (tmp_path / "pwned.txt").exists()


# ----------------------------------------------------------------------------------------------- SVHN


def _write_svhn(root: Path, name: str, labels: list[int], *, seed: int = 0) -> np.ndarray:
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3, len(labels)), dtype=np.uint8)
    savemat(root / name, {"X": x, "y": np.asarray(labels, dtype=np.float64).reshape(-1, 1)})
    return x


def test_svhn_layout_and_label_ten_is_zero(tmp_path):
    from scipy.io import savemat

    x = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3, 4), dtype=np.uint8)
    x[4, 7, :, 2] = (11, 22, 33)  # sample 2, row 4, col 7
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.array([[10], [1], [5], [9]], dtype=np.float64)})
    _write_svhn(tmp_path, "test_32x32.mat", [3, 10], seed=1)
    splits = load_svhn(tmp_path)
    assert splits.train.images.shape == (4, 3, 32, 32) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.tolist() == [0, 1, 5, 9] and splits.test.labels.tolist() == [3, 0]
    assert splits.train.labels.dtype == torch.int64
    assert splits.train.images[2, :, 4, 7].tolist() == [11, 22, 33]  # X[row, col, channel, sample]
    assert torch.equal(splits.train.images[1], torch.from_numpy(x[..., 1].transpose(2, 0, 1).copy()))
    assert splits.classes == tuple("0123456789")


def test_svhn_extra_and_errors(tmp_path):
    _write_svhn(tmp_path, "train_32x32.mat", [1, 2])
    _write_svhn(tmp_path, "test_32x32.mat", [3])
    with pytest.raises(DatasetError, match="extra_32x32.mat is missing.*ufldl.stanford.edu/housenumbers"):
        load_svhn(tmp_path, include_extra=True)
    _write_svhn(tmp_path, "extra_32x32.mat", [10, 4, 4])
    splits = load_dataset("svhn", root=tmp_path, include_extra=True)
    assert splits.train.labels.tolist() == [1, 2, 0, 4, 4] and splits.train.ids.tolist() == list(range(5))

    with pytest.raises(DatasetError, match="does not exist"):
        load_svhn(tmp_path / "nowhere")
    from scipy.io import savemat

    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 3), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DatasetError, match="3 images in X but 2 labels"):
        load_svhn(tmp_path)
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3), np.uint8), "y": np.ones((1, 1))})
    with pytest.raises(DatasetError, match=r"X must be \[H, W, 3, N\]"):
        load_svhn(tmp_path)
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 1), np.uint8), "y": np.array([[11]])})
    with pytest.raises(DatasetError, match="1..10"):
        load_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"this is not a mat file at all" * 10)
    with pytest.raises(DatasetError, match="not a readable MATLAB"):
        load_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(DatasetError, match="test_32x32.mat is missing"):
        load_svhn(tmp_path)


# ----------------------------------------------------------------------------------------------- image folders


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def _grey(value: int, size=(4, 5)) -> np.ndarray:
    return np.full(size, value, dtype=np.uint8)


def test_folder_grey_classes_order_and_groups(tmp_path):
    _png(tmp_path / "train/dog/b.png", _grey(20))
    _png(tmp_path / "train/dog/a.png", _grey(10))
    img = _grey(30)
    img[1, 2] = 250
    _png(tmp_path / "train/cat/x.png", img)
    (tmp_path / "train/cat/notes.txt").write_text("not an image")
    Image.fromarray(_grey(40)).convert("P").save(tmp_path / "train/cat/y.GIF")  # grey palette: still greyscale
    _png(tmp_path / "test/dog/t.png", _grey(40))
    (tmp_path / "groups.csv").write_text(
        "path,group\ntrain/cat/x.png,7\ntrain/cat/y.GIF,8\n./train/dog/a.png,3\ntrain/dog/b.png,7\n"
    )
    splits = load_image_folder(tmp_path, name="pets")
    assert splits.classes == ("cat", "dog")  # sorted folder names
    assert splits.train.images.shape == (4, 1, 4, 5) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.tolist() == [0, 0, 1, 1] and splits.test.labels.tolist() == [1]
    assert splits.train.images[:, 0, 0, 0].tolist() == [30, 40, 10, 20]  # class order, then file-name order
    assert int(splits.train.images[0, 0, 1, 2]) == 250
    assert splits.info["train_files"] == ["train/cat/x.png", "train/cat/y.GIF", "train/dog/a.png", "train/dog/b.png"]
    assert splits.train.groups.tolist() == [7, 8, 3, 7]
    assert splits.test.groups is None  # no test image listed: no groups for that split
    assert splits.name == "pets" and splits.train.name == "pets/train"


def test_folder_rgb_mode_resize_and_named_groups(tmp_path):
    red = np.zeros((6, 6, 3), np.uint8)
    red[..., 0] = 255
    _png(tmp_path / "train/a/red.png", red)
    _png(tmp_path / "train/b/grey.jpg", _grey(128, (6, 6)))
    _png(tmp_path / "test/a/red.bmp", red)
    (tmp_path / "groups.csv").write_text("train/a/red.png,alice\ntrain/b/grey.jpg,bob\ntest/a/red.bmp,alice\n")
    splits = load_image_folder(tmp_path)
    assert splits.image_shape == (3, 6, 6) and splits.info["mode"] == "RGB"  # one colour image -> RGB
    assert splits.train.images[0, :, 3, 3].tolist() == [255, 0, 0]
    assert splits.test.images[0, :, 0, 0].tolist() == [255, 0, 0]  # bmp is lossless
    grey = splits.train.images[1, :, 2, 2].tolist()
    assert grey[0] == grey[1] == grey[2] and abs(grey[0] - 128) <= 2  # jpeg: grey stays grey, close to 128
    assert splits.info["group_names"] == ("alice", "bob")
    assert splits.train.groups.tolist() == [0, 1] and splits.test.groups.tolist() == [0]

    small = load_image_folder(tmp_path, mode="L", image_size=(3, 2))
    assert small.image_shape == (1, 3, 2)
    assert int(small.train.images[0, 0, 1, 1]) == round(0.299 * 255)  # Pillow's luma of pure red


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "nothing")
    _png(tmp_path / "train/a/1.png", _grey(1))
    with pytest.raises(DatasetError, match="test is missing"):
        load_image_folder(tmp_path)
    _png(tmp_path / "test/zebra/1.png", _grey(1))
    with pytest.raises(DatasetError, match="classes that train lacks: \\['zebra'\\]"):
        load_image_folder(tmp_path)
    (tmp_path / "test/zebra/1.png").rename(tmp_path / "test/zebra.png")
    (tmp_path / "test/zebra").rmdir()
    _png(tmp_path / "test/a/big.png", _grey(1, (8, 8)))
    with pytest.raises(DatasetError, match="differ in size.*image_size"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, image_size=(8, 8)).image_shape == (1, 8, 8)
    (tmp_path / "test/a/big.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError, match="big.png: cannot decode"):
        load_image_folder(tmp_path)
    _png(tmp_path / "test/a/big.png", _grey(1))
    (tmp_path / "groups.csv").write_text("train/a/1.png,1\ntrain/a/typo.png,2\n")
    with pytest.raises(DatasetError, match="match no image"):
        load_image_folder(tmp_path)
    _png(tmp_path / "train/a/2.png", _grey(2))
    (tmp_path / "groups.csv").write_text("train/a/1.png,1\n")
    with pytest.raises(DatasetError, match="1 train images have no group"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, groups_file=None).train.groups is None
    with pytest.raises(ValueError, match="mode"):
        load_image_folder(tmp_path, mode="CMYK")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- arrays


def test_npz_channels_last_uint8_with_groups_and_classes(tmp_path):
    x = np.zeros((3, 5, 6, 3), np.uint8)  # [N, H, W, C]
    x[1, 2, 4] = (9, 8, 7)
    path = tmp_path / "toy.npz"
    np.savez_compressed(
        path,
        x_train=x,
        y_train=np.array([0, 2, 1]),
        x_test=x[:2],
        y_test=np.array([[2], [0]]),
        groups_train=np.array([5, 5, 6]),
        classes=np.array(["a", "b", "c"]),
    )
    splits = load_npz(path)
    assert splits.name == "toy" and splits.classes == ("a", "b", "c")
    assert splits.train.images.shape == (3, 3, 5, 6) and splits.train.images.dtype == torch.uint8
    assert splits.train.images[1, :, 2, 4].tolist() == [9, 8, 7]
    assert splits.test.labels.tolist() == [2, 0] and splits.train.labels.dtype == torch.int64
    assert splits.train.groups.tolist() == [5, 5, 6] and splits.test.groups is None
    assert load_dataset("npz", path=path).image_shape == (3, 5, 6)


@pytest.mark.parametrize(
    ("shape", "layout", "expected"),
    [
        ((4, 7, 9), "auto", (1, 7, 9)),  # [N, H, W]
        ((4, 7, 9, 1), "auto", (1, 7, 9)),  # channels-last grey
        ((4, 3, 9, 9), "auto", (3, 9, 9)),  # channels-first
        ((4, 1, 9, 9), "auto", (1, 9, 9)),
        ((4, 3, 9, 3), "auto", (3, 9, 3)),  # ambiguous: channels-first unless told
        ((4, 3, 9, 3), "nhwc", (3, 3, 9)),
    ],
)
def test_from_arrays_layouts(shape, layout, expected):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    splits = from_arrays(x, [0, 1, 0, 1], x[:1], [1], layout=layout)
    assert splits.image_shape == expected and splits.train.images.dtype == torch.float32
    assert splits.classes == ("0", "1")


def test_from_arrays_values_kept_and_torch_input():
    x = torch.rand(2, 4, 4, 3)
    splits = from_arrays(
        x,
        torch.tensor([0, 1]),
        x,
        torch.tensor([1, 0]),
        classes=["no", "yes"],
        groups_train=[4, 2],
        groups_test=np.array([[1], [1]]),
    )
    assert torch.equal(splits.train.images, x.permute(0, 3, 1, 2))  # float stays float, no quantising
    assert splits.train.groups.tolist() == [4, 2] and splits.test.groups.tolist() == [1, 1]
    ints = from_arrays(np.full((2, 1, 2, 2), 200, np.int64), [0, 0], np.zeros((1, 1, 2, 2), np.int32), [0])
    assert ints.train.images.dtype == torch.uint8 and int(ints.train.images.max()) == 200


def test_arrays_errors(tmp_path):
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(DatasetError, match=r"\[0, 1\].*divide"):
        from_arrays(x + 255, [0, 1], x, [0, 1])
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        from_arrays(np.full_like(x, np.nan), [0, 1], x, [0, 1])
    with pytest.raises(DatasetError, match="0-255"):
        from_arrays(np.full((2, 1, 4, 4), 300, np.int64), [0, 1], x, [0, 1])
    with pytest.raises(DatasetError, match="2 images but 3 labels"):
        from_arrays(x, [0, 1, 1], x, [0, 1])
    with pytest.raises(DatasetError, match="integers"):
        from_arrays(x, [0.0, 1.0], x, [0, 1])
    with pytest.raises(DatasetError, match="2 images but 1 group ids"):
        from_arrays(x, [0, 1], x, [0, 1], groups_train=[3])
    with pytest.raises(DatasetError, match="shape"):
        from_arrays(np.zeros((2, 4)), [0, 1], x, [0, 1])
    with pytest.raises(DatasetError, match="only 2 classes"):
        from_arrays(x, [0, 2], x, [0, 1], classes=("a", "b"))
    with pytest.raises(ValueError, match="layout"):
        from_arrays(x, [0, 1], x, [0, 1], layout="hwc")  # type: ignore[arg-type]

    with pytest.raises(DatasetError, match="does not exist.*np.savez"):
        load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", x_train=x, y_train=[0, 1])
    with pytest.raises(DatasetError, match=r"missing arrays \['x_test', 'y_test'\]"):
        load_npz(tmp_path / "partial.npz")
    np.savez(
        tmp_path / "objects.npz",
        x_train=x,
        y_train=[0, 1],
        x_test=x,
        y_test=[0, 1],
        classes=np.array(["a", "b"], dtype=object),
    )
    with pytest.raises(DatasetError, match="string array"):
        load_npz(tmp_path / "objects.npz")
    (tmp_path / "junk.npz").write_bytes(b"definitely not a zip archive")
    with pytest.raises(DatasetError, match="not a .npz"):
        load_npz(tmp_path / "junk.npz")
    raw = (tmp_path / "partial.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="cut.npz"):
        load_npz(tmp_path / "cut.npz")


# ----------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("key", ["cifar10", "cifar100", "svhn", "image-folder", "npz", "arrays"])
def test_new_loaders_are_registered(key):
    assert key in DATASETS
