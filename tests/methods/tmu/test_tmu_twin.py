"""TMU step 1: twin-set size (Eq. 3), sampling and augmentation, twin labels, twin model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oblivio.methods import UnlearningError
from oblivio.methods.tmu import augment_images, build_twin_sets, generalisation_labels, train_twin_model, twin_size
from oblivio.training import accuracy, predict_logits


@pytest.mark.parametrize("n_f,n_r", [(10, 1337), (100, 49900), (5000, 45000), (1, 3)])
def test_twin_size_satisfies_eq3(n_f, n_r):
    size = twin_size(n_f, n_r)
    # |D_f| / |D_r| = |D_tw| / (|D_r| + |D_f|), up to rounding to a whole image
    assert abs(size - n_f * (n_r + n_f) / n_r) <= 0.5
    assert size >= n_f


def test_twin_size_rejects_empty_sets():
    with pytest.raises(ValueError):
        twin_size(0, 10)


def test_sample_branch_same_class_no_augmentation(tmu_splits):
    forget, holdout = tmu_splits.forget, tmu_splits.holdout
    size = twin_size(len(forget), len(tmu_splits.retain))
    (twin,) = build_twin_sets(forget, holdout, size=size, seed=0)
    assert len(twin.data) == size == 10
    assert twin.n_augmented == 0
    assert set(twin.data.labels.tolist()) == {3}
    ids = twin.data.ids.tolist()
    assert len(set(ids)) == len(ids) and set(ids) <= set(holdout.ids.tolist())
    # the images are the holdout images with those ids
    pos = holdout.positions_of_ids(twin.data.ids)
    assert torch.equal(twin.data.float_images(), holdout.float_images(pos))


def test_class_proportions_follow_the_forget_set(tmu_splits):
    holdout, retain = tmu_splits.holdout, tmu_splits.retain
    labels = retain.labels.numpy()
    pos = np.concatenate([np.flatnonzero(labels == 3)[:6], np.flatnonzero(labels == 5)[:4]])
    forget = retain.subset(pos)
    (twin,) = build_twin_sets(forget, holdout, size=20, seed=1)
    counts = twin.data.class_counts()
    assert counts[3] == 12 and counts[5] == 8 and counts.sum() == 20


def test_augment_branch_when_holdout_is_too_small(tmu_splits):
    forget, holdout = tmu_splits.forget, tmu_splits.holdout
    available = int((holdout.labels == 3).sum())
    (twin,) = build_twin_sets(forget, holdout, size=available + 17, seed=0)
    assert len(twin.data) == available + 17
    assert twin.n_augmented == 17
    assert set(twin.data.labels.tolist()) == {3}
    x = twin.data.float_images()
    assert x.min() >= 0 and x.max() <= 1
    originals = twin.data.ids[~twin.augmented]
    assert sorted(originals.tolist()) == sorted(holdout.ids[holdout.labels == 3].tolist())


def test_several_twins_are_disjoint(tmu_splits):
    twins = build_twin_sets(tmu_splits.forget, tmu_splits.holdout, size=8, n_twins=2, seed=0)
    a, b = (set(t.data.ids[~t.augmented].tolist()) for t in twins)
    assert len(twins) == 2 and not (a & b)


def test_missing_class_in_holdout_is_a_clear_error(tmu_splits):
    holdout = tmu_splits.holdout
    no_threes = holdout.subset(torch.nonzero(holdout.labels != 3).squeeze(1))
    with pytest.raises(UnlearningError, match="holdout has 0 image"):
        build_twin_sets(tmu_splits.forget, no_threes, size=10)


def test_augment_images_is_seeded_and_in_range():
    x = torch.rand(6, 1, 8, 8)
    a = augment_images(x, "crop+flip+noise", torch.Generator().manual_seed(3))
    b = augment_images(x, "crop+flip+noise", torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    with pytest.raises(ValueError, match="unknown twin augmentation"):
        augment_images(x, "rotate", torch.Generator())


def test_twin_labels_are_original_model_correctness(tmu_original, tmu_splits):
    (twin,) = build_twin_sets(tmu_splits.forget, tmu_splits.holdout, size=20, seed=0)
    labels = generalisation_labels(tmu_original, twin.data)
    expected = [
        int(p == y)
        for p, y in zip(
            predict_logits(tmu_original, twin.data).argmax(1).tolist(), twin.data.labels.tolist(), strict=True
        )
    ]
    assert labels.tolist() == expected


def test_twin_model_reaches_target_accuracy(tmu_original, tmu_splits):
    (twin,) = build_twin_sets(tmu_splits.forget, tmu_splits.holdout, size=20, seed=0)
    before = {k: v.clone() for k, v in tmu_original.state_dict().items()}
    target = accuracy(tmu_original, tmu_splits.forget)
    m_t, info = train_twin_model(
        tmu_original, retain=tmu_splits.retain, forget=tmu_splits.forget, twin=twin.data, epochs=30, seed=0
    )
    assert info["target_accuracy"] == pytest.approx(target)
    assert info["reached"] and accuracy(m_t, twin.data) >= target
    assert 0 <= info["epochs"] <= 30
    assert all(torch.equal(before[k], v) for k, v in tmu_original.state_dict().items())  # M_o untouched


def test_real_twin_capacity_counts_disjoint_real_sets():
    import torch

    from oblivio.data import ImageDataset
    from oblivio.methods.tmu.twin import real_twin_capacity

    forget = ImageDataset(torch.rand(10, 1, 4, 4), torch.tensor([0] * 10), ("a", "b"))
    holdout = ImageDataset(torch.rand(45, 1, 4, 4), torch.tensor([0] * 25 + [1] * 20), ("a", "b"))
    assert real_twin_capacity(forget, holdout, size=10) == 2
    assert real_twin_capacity(forget, holdout, size=30) == 1  # never below one
