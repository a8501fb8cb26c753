"""The grouped, imbalanced Fashion-MNIST proxy of the 004 study (issue 22 item 2) and its attribute-weighted identity
requests (item 3), plus the same requests on a user's own grouped data (an image folder, an npz)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oblivio.data import load_dataset
from oblivio.data.identities import class_identity_counts
from oblivio.scenarios import Groups, ScenarioError, make_forget_split, parse_scenario, spec_to_string

SMALL = {"train_identities": 120, "test_identities": 40, "views": 4, "image_size": 14, "imbalance": 4.0}


@pytest.fixture(scope="module")
def ident():
    return load_dataset("fmnist-identities", **SMALL)


def test_deterministic_and_shaped(ident):
    again = load_dataset("fmnist-identities", **SMALL)
    assert torch.equal(ident.train.images, again.train.images) and torch.equal(ident.test.images, again.test.images)
    other = load_dataset("fmnist-identities", **{**SMALL, "seed": 1})
    assert not torch.equal(ident.train.images, other.train.images)
    assert len(ident.train) == 120 * 4 and len(ident.test) == 40 * 4
    assert ident.train.image_shape == (1, 14, 14)
    assert np.bincount(ident.train.groups.numpy()).min() == 4  # every identity has all its views


def test_class_counts_match_the_stated_imbalance(ident):
    per_class = np.asarray(ident.info["identities_per_class_train"])
    assert per_class.sum() == 120
    counts = ident.train.class_counts().numpy()
    np.testing.assert_array_equal(counts, per_class * 4)
    # geometric from the most to the least frequent class; the ratio is the stated one up to rounding to integers
    assert abs(per_class.max() / per_class.min() - 4.0) / 4.0 < 0.25
    ranked = np.sort(per_class)[::-1]
    ideal = 120 * 4.0 ** (-np.arange(10) / 9) / (4.0 ** (-np.arange(10) / 9)).sum()
    assert np.abs(ranked - ideal).max() < 1
    np.testing.assert_array_equal(class_identity_counts(120, 10, 4.0, np.arange(10)), ranked)


def test_views_of_one_identity_are_closer(ident):
    x = ident.train.float_images().flatten(1)
    g, y = ident.train.groups, ident.train.labels
    d = torch.cdist(x, x)
    eye = torch.eye(len(g), dtype=torch.bool)
    same = (g[:, None] == g[None, :]) & ~eye
    same_class_other = (y[:, None] == y[None, :]) & (g[:, None] != g[None, :])
    own = (d * same).sum(1) / same.sum(1)
    other = (d * same_class_other).sum(1) / same_class_other.sum(1)
    # each image is closer to its own identity's other views than to other identities of its class, on average
    assert float((own < other).float().mean()) > 0.9
    assert float(own.mean()) < 0.8 * float(other.mean())
    # and its nearest neighbour is a view of the same identity far more often than chance (3 of 479 images)
    d.fill_diagonal_(float("inf"))
    share = float((g[d.argmin(1)] == g).float().mean())
    assert share > 10 * 3 / 479


def test_test_identities_are_disjoint(ident):
    assert not set(ident.train.groups.tolist()) & set(ident.test.groups.tolist())
    # built from different Fashion-MNIST splits: base images are distinct items
    assert len(set(ident.info["train_base_indices"])) == 120


def test_attribute_correlates_with_label_and_looks(ident):
    attr = ident.info["group_attributes"]
    g, y = ident.train.groups.numpy(), ident.train.labels.numpy()
    a = np.asarray([attr[int(k)] for k in g])
    assert ((a >= 0) & (a <= 1)).all()
    class_means = np.asarray([a[y == c].mean() for c in range(10)])
    # the class explains a large share of the attribute's variance (eta squared)
    eta2 = sum((y == c).sum() * (class_means[c] - a.mean()) ** 2 for c in range(10)) / ((a - a.mean()) ** 2).sum()
    assert eta2 > 0.3
    # within each class, "older" identities look fainter (fainter base items, contrast 1 - 0.35 a)
    bright = ident.train.float_images().flatten(1).mean(1).numpy()
    within = [np.corrcoef(a[y == c], bright[y == c])[0, 1] for c in range(10)]
    assert np.mean(within) < -0.3


def test_attribute_weighted_request(ident):
    spec = parse_scenario("group-frac:0.05:low")
    assert spec == Groups(fraction=0.05, toward="low", power=4.0)
    assert spec_to_string(spec) == "group-frac:0.05:low:4"
    attr = ident.info["group_attributes"]
    g = ident.train.groups.numpy()
    means, rand_means = [], []
    for seed in range(20):
        s = make_forget_split(ident.train, spec, seed=seed, group_attributes=attr)
        chosen = s.groups
        assert len(chosen) == 6  # 5% of 120 identities
        assert s.rule == "power: w = (1 - a)^4" and s.to_dict()["groups"] == chosen.tolist()
        # an identity is never split: every view of a chosen identity is forgotten, none of another
        forgotten = np.zeros(len(g), bool)
        forgotten[s.forget_pos] = True
        assert np.array_equal(forgotten, np.isin(g, chosen))
        means.append(np.mean([attr[int(k)] for k in chosen]))
        r = make_forget_split(ident.train, "group-frac:0.05", seed=seed, group_attributes=attr)
        rand_means.append(np.mean([attr[int(k)] for k in r.groups]))
    assert np.mean(means) < np.mean(rand_means) - 0.1  # shifted toward the young end
    high = make_forget_split(ident.train, "group-frac:0.05:high:2", seed=0, group_attributes=attr)
    assert high.rule == "power: w = a^2"


def test_bad_group_requests_fail_clearly(ident, digits):
    attr = ident.info["group_attributes"]
    with pytest.raises(ScenarioError, match="has no group column"):
        make_forget_split(digits.train, "group-frac:0.02")
    with pytest.raises(ScenarioError, match="dataset has none"):
        make_forget_split(ident.train, "group-frac:0.05:low")
    with pytest.raises(ScenarioError, match="120 finite non-negative numbers"):
        make_forget_split(ident.train, Groups(fraction=0.05, weights=(1.0, 2.0)))
    with pytest.raises(ScenarioError, match="all zero"):
        make_forget_split(ident.train, Groups(fraction=0.05, weights=(0.0,) * 120))
    with pytest.raises(ScenarioError, match="selects no group"):
        make_forget_split(ident.train, "group-frac:0.001")
    with pytest.raises(ScenarioError, match="only 1 groups have a non-zero weight"):
        make_forget_split(ident.train, Groups(fraction=0.05, weights=(1.0,) + (0.0,) * 119))
    with pytest.raises(ScenarioError, match="'low' or 'high'"):
        parse_scenario("group-frac:0.02:young")
    with pytest.raises(ScenarioError, match="has no attribute"):
        make_forget_split(ident.train, "group-frac:0.05:low", group_attributes={0: 0.5})
    with pytest.raises(ScenarioError, match=r"in \[0, 1\]"):
        make_forget_split(ident.train, "group-frac:0.05:low", group_attributes={k: 2.0 for k in attr})


def _write_folder(root, rng):
    from PIL import Image

    rows, attrs = ["path,group"], ["group,attribute"]
    for split, n_groups, first in (("train", 12, 0), ("test", 4, 100)):
        for k in range(n_groups):
            gid = first + k
            cls = "a" if k % 3 else "b"
            base = rng.integers(0, 255, (8, 8))
            for v in range(3):
                p = root / split / cls / f"g{gid}_{v}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                img = np.clip(base + rng.integers(-10, 10, (8, 8)), 0, 255).astype(np.uint8)
                Image.fromarray(img, mode="L").save(p)
                rows.append(f"{split}/{cls}/g{gid}_{v}.png,id{gid:03d}")
            attrs.append(f"id{gid:03d},{(k % 6) / 5:.2f}")
    (root / "groups.csv").write_text("\n".join(rows) + "\n")
    (root / "group_attributes.csv").write_text("\n".join(attrs) + "\n")


def test_user_folder_and_npz_with_groups_and_attributes(tmp_path):
    from oblivio.experiments import Experiment
    from oblivio.experiments.config import ExperimentConfig

    _write_folder(tmp_path / "faces", np.random.default_rng(0))
    ds = load_dataset("image-folder", root=str(tmp_path / "faces"))
    assert len(ds.info["group_attributes"]) == 16
    cfg = ExperimentConfig(
        dataset="image-folder", dataset_options={"root": str(tmp_path / "faces")}, model="small-cnn", recipe="tiny"
    )
    exp = Experiment(cfg, store=tmp_path / "store", progress=False)
    split = exp.forget_split("group-frac:0.2:low", seed=0)  # 2 of 12 identities, via the experiment's data info
    assert len(split.groups) == 2 and len(split.forget_ids) == 6 and split.rule
    names = ds.info["group_names"]
    assert all(
        float(
            dict(line.split(",") for line in (tmp_path / "faces/group_attributes.csv").read_text().split()[1:])[
                names[g]
            ]
        )
        < 1
        for g in split.groups
    )

    path = tmp_path / "toy.npz"
    x = np.random.default_rng(1).random((12, 1, 8, 8))
    np.savez(
        path,
        x_train=x,
        y_train=np.arange(12) % 2,
        x_test=x[:4],
        y_test=[0, 1, 0, 1],
        groups_train=np.arange(12) // 2,
        groups_test=[10, 10, 11, 11],
        group_attributes=np.array([[g, g / 5] for g in range(6)]),
    )
    npz = load_dataset("npz", path=str(path))
    s = make_forget_split(npz.train, "group-frac:0.2:low", seed=0, group_attributes=npz.info["group_attributes"])
    assert len(s.groups) == 1 and len(s.forget_ids) == 2
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=x, y_train=np.arange(12) % 2, x_test=x[:4], y_test=[0, 1, 0, 1], group_attributes=[1, 2])
    with pytest.raises(Exception, match=r"\[G, 2\]"):
        load_dataset("npz", path=str(bad))
