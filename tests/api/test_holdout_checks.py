"""Holdout and transforms, checked (issue 24, item 4): a class-sorted holdout, a random augmentation in the user's
transform, a holdout of another image size, and n_twins shrinking, each refused or said, with a fix that works.

Oracles: class counts and twin sizes recomputed here from the labels and the paper's Eq. 3
(|D_tw| = |D_f| |D| / |D_r|), written out, not taken from oblivio; the fixes are applied as the messages say them.
"""

from __future__ import annotations

import io
import logging
import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

import oblivio
from oblivio.data import DatasetError, ImageDataset, as_image_dataset
from oblivio.methods import UnlearningError, create_method

TRAIN = 800  # digits 0..799 are the training set, the rest unseen
FAST_TMU = dict(twin_epochs=1, epochs=1, predictor_epochs=5, progress=False)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    data = TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8), torch.tensor(y))
    forget_ids = [i for i in range(TRAIN) if y[i] == 3][:20]
    order = np.argsort(y[TRAIN:], kind="stable") + TRAIN  # the unseen images, sorted by class (as many datasets are)
    return {
        "data": data,
        "y": y,
        "forget": Subset(data, forget_ids),
        "retain": Subset(data, sorted(set(range(TRAIN)) - set(forget_ids))),
        "sorted_rest": Subset(data, order.tolist()),
    }


def test_class_sorted_holdout_is_refused_before_training_with_a_fix_that_works(digits, monkeypatch):
    d = digits
    holdout = Subset(d["sorted_rest"], range(150))  # the Subset(test, range(250)): the first classes only
    held = {int(d["y"][d["sorted_rest"].indices[i]]) for i in range(150)}
    assert 3 not in held  # the oracle: no image of the forget class
    from oblivio.methods.tmu import twin_work as tmu_method

    def trained(*a, **k):  # any twin training would be too late
        raise AssertionError("the check must come before any training")

    monkeypatch.setattr(tmu_method, "train_twin_model", trained)
    kw = dict(forget=d["forget"], retain=d["retain"], holdout=holdout)
    with pytest.raises(UnlearningError) as exc:
        oblivio.unlearn(_net(), method="tmu", n_twins=1, **kw, **FAST_TMU)
    msg = str(exc.value)
    assert "tmu: the holdout has no image of class '3', of which the forget set has 20" in msg
    assert "train_test_split" in msg and "stratify=" in msg and "n_twins=1" not in msg
    with pytest.raises(UnlearningError, match=r"two-stage: the holdout has no image of class '\d'.*retain set"):
        oblivio.unlearn(_net(), method="two-stage", **kw, progress=False)
    monkeypatch.undo()
    oblivio.unlearn(_net(), method="finetune", epochs=1, progress=False, **kw)  # fine-tune does not use it
    # the fix, as the message writes it: a class-stratified holdout
    test = d["sorted_rest"]
    hold, rest = train_test_split(range(len(test)), train_size=250, stratify=[int(y) for _, y in test], random_state=0)
    holdout, test = Subset(test, hold), Subset(test, rest)
    _, report = oblivio.unlearn(
        _net(), forget=d["forget"], retain=d["retain"], holdout=holdout, method="tmu", n_twins=1, **FAST_TMU
    )
    assert report.info["n_twins"] == 1


class _Augmenting(Dataset):
    """A user's dataset whose transform flips images at random (sampled anew on every read)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = self.x[i]
        return (img.flip(-1) if torch.rand(()) < 0.5 else img), self.y[i]


def test_random_transform_is_detected_not_frozen(digits):
    d = digits
    x, y = d["data"].tensors
    aug = _Augmenting(x[:200], y[:200])
    with pytest.raises(DatasetError, match=r"read twice gave two different images.*transform is random"):
        as_image_dataset(aug)
    with pytest.raises(DatasetError, match=r"^retain: .*Recipe\(augment='crop4\+flip'\).*register_recipe"):
        oblivio.unlearn(_net(), forget=d["forget"], retain=aug, method="finetune", progress=False)
    # the fix: the same data without the random transform is read as it is
    plain = as_image_dataset(TensorDataset(x[:200], y[:200]))
    assert torch.equal(plain.images, x[:200])


def test_image_size_mismatch_is_refused_with_the_sizes(digits):
    d = digits
    x, y = d["data"].tensors
    big = nn.functional.interpolate(x[TRAIN : TRAIN + 100], size=(10, 10))  # 10x10 holdout beside 8x8 training images
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))  # takes both
    kw = dict(forget=d["forget"], retain=d["retain"], method="tmu", n_twins=1, **FAST_TMU)
    with pytest.raises(DatasetError, match=r"holdout images are 1x10x10 .* forget images are 1x8x8"):
        oblivio.unlearn(conv, holdout=(big, y[TRAIN : TRAIN + 100]), **kw)
    with pytest.raises(DatasetError, match=r"test images are 1x10x10"):
        oblivio.unlearn(
            conv, forget=d["forget"], retain=d["retain"], test=(big, y[TRAIN : TRAIN + 100]), method="finetune"
        )
    # the method's own check, for ImageDatasets handed to it directly
    names = tuple(str(k) for k in range(10))
    f = as_image_dataset(d["forget"], classes=names)
    r = as_image_dataset(d["retain"], classes=names)
    h = ImageDataset(big, y[TRAIN : TRAIN + 100], f.classes)
    with pytest.raises(UnlearningError, match=r"holdout images are 1x10x10 .* forget images are 1x8x8.*resize"):
        create_method("tmu", n_twins=1)(conv, forget=f, retain=r, holdout=h, progress=False)


def test_n_twins_shortfall_is_said_with_the_limiting_class(digits):
    d = digits
    y = d["y"]
    rest = np.arange(TRAIN, len(y))
    threes = rest[y[rest] == 3]
    others = rest[y[rest] != 3][:200]
    holdout = Subset(d["data"], sorted(threes[:30].tolist() + others.tolist()))  # 30 unseen 3s
    n_f, n_r = 20, TRAIN - 20
    need = round(n_f * (n_r + n_f) / n_r)  # Eq. 3: images per twin set, all of class 3 here
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    logging.getLogger("oblivio").addHandler(handler)
    try:
        _, report = oblivio.unlearn(
            _net(), forget=d["forget"], retain=d["retain"], holdout=holdout, method="tmu", n_twins=4, **FAST_TMU
        )
    finally:
        logging.getLogger("oblivio").removeHandler(handler)
    got = 30 // need
    assert report.info["n_twins"] == got and report.info["n_twins_requested"] == 4
    note = report.info["n_twins_note"]
    assert f"n_twins=4 became {got}" in note and f"needs {need} real holdout images of class '3'" in note
    assert f"the holdout has 30; for 4 twins give a holdout with at least {4 * need} images" in note
    assert note in logged.getvalue()
    # the fix it names: a holdout with enough images of the class gives the twins asked for
    enough = int(re.search(r"at least (\d+) images", note).group(1))
    assert threes.size >= enough
    holdout = Subset(d["data"], sorted(threes[:enough].tolist() + others.tolist()))
    _, report = oblivio.unlearn(
        _net(), forget=d["forget"], retain=d["retain"], holdout=holdout, method="tmu", n_twins=4, **FAST_TMU
    )
    assert report.info["n_twins"] == 4 and "n_twins_note" not in report.info
