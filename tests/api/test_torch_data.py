"""Torch data intake: map-style Datasets, Subsets, DataLoaders, PIL / NumPy items, arrays, sample-id functions.

Oracle: the expected images are the inputs themselves (stacked here with torch / NumPy directly).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)

from oblivio.data import DatasetError, ImageDataset, as_image_dataset

G = torch.Generator().manual_seed(0)
X = torch.rand(12, 3, 6, 6, generator=G)
Y = torch.arange(12) % 4


class PilDataset(Dataset):
    """Items as (PIL image, numpy label), like a torchvision dataset without transforms; has ``classes``."""

    classes = ["w", "x", "y", "z"]

    def __init__(self):
        self.arr = (np.random.default_rng(0).random((8, 6, 6, 3)) * 255).astype(np.uint8)

    def __len__(self):
        return len(self.arr)

    def __getitem__(self, i):
        return Image.fromarray(self.arr[i]), np.int64(i % 4), {"extra": i}


def test_tensor_dataset_is_read_in_order_with_positions_as_ids():
    ds = as_image_dataset(TensorDataset(X, Y), name="toy")
    torch.testing.assert_close(ds.images, X)
    assert ds.labels.tolist() == Y.tolist() and ds.ids.tolist() == list(range(12))
    assert ds.classes == ("0", "1", "2", "3") and ds.name == "toy"


def test_subsets_keep_parent_indices_as_ids_even_nested():
    full = TensorDataset(X, Y)
    inner = Subset(full, [10, 3, 7, 1])
    ds = as_image_dataset(Subset(inner, [2, 0]))
    assert ds.ids.tolist() == [7, 10]
    torch.testing.assert_close(ds.images, X[[7, 10]])


def test_pil_items_with_class_names_and_extra_fields():
    ds = as_image_dataset(PilDataset())
    assert ds.images.dtype == torch.uint8 and ds.image_shape == (3, 6, 6)
    assert torch.equal(ds.images, torch.from_numpy(PilDataset().arr).permute(0, 3, 1, 2))
    assert ds.classes == ("w", "x", "y", "z")


def test_dataloader_whole_dataset_and_subset_sampler():
    full = TensorDataset(X, Y)
    shuffled = as_image_dataset(DataLoader(full, batch_size=5, shuffle=True))
    torch.testing.assert_close(shuffled.images, X)  # batching and shuffling are ignored
    sampled = as_image_dataset(DataLoader(full, batch_size=2, sampler=SubsetRandomSampler([9, 4, 2])))
    assert sampled.ids.tolist() == [2, 4, 9]
    torch.testing.assert_close(sampled.images, X[[2, 4, 9]])
    over_subset = as_image_dataset(DataLoader(Subset(full, [5, 6]), batch_size=2))
    assert over_subset.ids.tolist() == [5, 6]


def test_sample_id_function_and_sequence():
    ds = as_image_dataset(TensorDataset(X, Y), ids=lambda i: 1000 + 2 * i)
    assert ds.ids.tolist() == [1000 + 2 * i for i in range(12)]
    arr = as_image_dataset((X.numpy(), Y.numpy()), ids=np.arange(12)[::-1])
    assert arr.ids.tolist() == list(range(11, -1, -1))


def test_arrays_pair_channels_last():
    x = (np.random.default_rng(1).random((5, 8, 8, 3))).astype(np.float32)
    ds = as_image_dataset((x, [0, 1, 2, 0, 1]))
    assert ds.image_shape == (3, 8, 8)
    np.testing.assert_allclose(ds.images.numpy(), x.transpose(0, 3, 1, 2))


def test_image_dataset_passes_through():
    base = ImageDataset(X, Y, tuple("abcd"))
    assert as_image_dataset(base) is base
    assert as_image_dataset(base, ids=range(100, 112)).ids[0] == 100


class Normalised(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return (X[i] - 0.5) / 0.25, int(Y[i])


class Stream(IterableDataset):
    def __iter__(self):
        yield X[0], 0


class Ragged(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return torch.rand(1, 4 + i, 4), 0


class OneHot(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return X[i], torch.tensor([1.0, 0.0])


class Bare(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return X[i]


@pytest.mark.parametrize(
    "data, match",
    [
        (Normalised(), r"\[0, 1\].*oblivio.models.Normalize"),
        (Stream(), "IterableDataset"),
        (DataLoader(Stream()), "IterableDataset"),
        (Ragged(), "resize"),
        (OneHot(), "one-hot"),
        (Bare(), r"\(image, label\) pairs"),
        (DataLoader(TensorDataset(X, Y), sampler=WeightedRandomSampler([1.0] * 12, 12)), "may repeat or skip"),
        ("not data", "expected an ImageDataset"),
    ],
)
def test_bad_data_fails_clearly(data, match):
    with pytest.raises(DatasetError, match=match):
        as_image_dataset(data)


def test_duplicate_or_short_ids_fail():
    with pytest.raises(DatasetError, match="unique"):
        as_image_dataset(TensorDataset(X, Y), ids=lambda i: 0)
    with pytest.raises(DatasetError, match="12 samples but 3 ids"):
        as_image_dataset(TensorDataset(X, Y), ids=[1, 2, 3])
