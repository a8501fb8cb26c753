"""TMU's cheap stages and twin reuse (issue 10): the whole-tensor predictor against the generic training loop, NF on
the same-class references against a literal full search, the twin cache (hit, misses, a damaged file), and the
step-level stop of the aligned step."""

from __future__ import annotations

import copy
import functools
import logging

import pytest
import torch
import torch.nn.functional as F

from oblivio.methods import create_method
from oblivio.methods.tmu import train_predictor
from oblivio.methods.tmu.cache import FileTwinCache, MemoryTwinCache, class_profile, size_bucket
from oblivio.methods.tmu.features import nf_feature, nf_reference
from oblivio.methods.tmu.predictor import make_mlp
from oblivio.training import accuracy, fit, predict_features


# ---------------------------------------------------------------------------------------------- predictor
def _noisy_toy(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g)
    y = ((x[:, 0] + 0.5 * x[:, 1] + 0.4 * torch.rand(n, generator=g)) > 0.75).long()
    return x, y


def _reference_predictor(x, y, *, seed, epochs, bs=16):
    """The predictor as it was trained before issue 10: the generic loop (oblivio.training.fit), threshold 0.5."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mlp = make_mlp(x.shape[1], hidden=(64, 32))
    gen = torch.Generator().manual_seed(seed)
    yf = y.float()

    def batches(epoch):
        order = torch.randperm(x.shape[0], generator=gen)
        return [(x[order[i : i + bs]], yf[order[i : i + bs]]) for i in range(0, x.shape[0], bs)]

    def loss_fn(model, batch):
        return F.binary_cross_entropy_with_logits(model(batch[0]).squeeze(1), batch[1])

    opt = torch.optim.SGD(mlp.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    fit(mlp, batches, epochs=epochs, optimizer=opt, loss_fn=loss_fn, progress=False)
    mlp.eval()
    return lambda z: (torch.sigmoid(mlp(z).squeeze(1)) >= 0.5).long()


def test_whole_tensor_predictor_decides_as_well_as_the_generic_loop():
    x, y = _noisy_toy(160, 0)
    xt, yt = _noisy_toy(400, 1)
    ref = _reference_predictor(x, y, seed=3, epochs=40)
    new = train_predictor(x, y, balance="none", seed=3, epochs=40)
    with torch.no_grad():
        ref_test = ref(xt)
    acc_ref = float((ref_test == yt).float().mean())
    acc_new = float((new.predict(xt) == yt).float().mean())
    assert acc_new >= acc_ref - 0.02  # same decision quality on unseen data
    assert acc_new > float(torch.maximum(yt.float().mean(), 1 - yt.float().mean()))  # better than the majority
    # same SGD steps in the same order: the decisions agree on (nearly) every sample
    assert float((new.predict(xt) == ref_test).float().mean()) >= 0.97


def test_predictor_restores_the_thread_count():
    before = torch.get_num_threads()
    train_predictor(*_noisy_toy(50, 2), epochs=2, seed=0)
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------------------------------------- NF
def _literal_nf(q, ql, r, rl, k):
    """Literal search over every remain sample: normalise, per query the mean of the k smallest same-class
    distances."""
    q, r = F.normalize(q, dim=1), F.normalize(r, dim=1)
    out = []
    for i in range(q.shape[0]):
        d = sorted(float(torch.sqrt(((q[i] - r[j]) ** 2).sum())) for j in range(r.shape[0]) if int(rl[j]) == int(ql[i]))
        out.append(sum(d[:k]) / len(d[:k]))
    return torch.tensor(out)


def test_nf_on_the_same_class_references_equals_the_full_search(tmu_original, tmu_splits):
    forget, retain = tmu_splits.forget, tmu_splits.retain
    got = nf_feature(tmu_original, forget, retain, k=5)  # only class-3 references go through the model
    full = _literal_nf(
        predict_features(tmu_original, forget), forget.labels, predict_features(tmu_original, retain), retain.labels, 5
    )
    torch.testing.assert_close(got, full, atol=1e-4, rtol=1e-4)


def test_nf_reference_keeps_the_query_classes_and_caps_with_a_stratified_sample(tmu_splits):
    retain = tmu_splits.retain
    labels = torch.tensor([1, 1, 4])
    ref = nf_reference(labels, retain)
    assert set(ref.labels.tolist()) == {1, 4}
    assert len(ref) == int(((retain.labels == 1) | (retain.labels == 4)).sum())
    capped = nf_reference(labels, retain, max_size=40, seed=0)
    assert len(capped) == 40 and set(capped.labels.tolist()) == {1, 4}
    assert (
        abs(int((capped.labels == 1).sum()) - int((capped.labels == 4).sum())) <= 4
    )  # stratified (near-equal classes)
    # the same samples whatever the order of the remain set
    shuffled = retain.subset(torch.randperm(len(retain), generator=torch.Generator().manual_seed(1)))
    again = nf_reference(labels, shuffled, max_size=40, seed=0)
    assert sorted(again.ids.tolist()) == sorted(capped.ids.tolist())


# ---------------------------------------------------------------------------------------------- cache
def test_profile_and_size_bucket():
    assert class_profile(torch.tensor([2] * 30), 5) == ((2, 20),)
    assert class_profile(torch.tensor([0] * 10 + [1] * 30), 5) == ((0, 5), (1, 15))
    assert size_bucket(100) == size_bucket(105) != size_bucket(150)
    with pytest.raises(ValueError):
        size_bucket(0)


def _run(original, splits, cache, seed=0, **hparams):
    tmu = create_method("tmu", n_twins=1, **hparams)
    tmu.twin_cache = cache
    out = tmu(original, forget=splits.forget, retain=splits.retain, holdout=splits.holdout, seed=seed, progress=False)
    return tmu.info, out


def _weights_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_cache_hit_reuses_the_twin_work_and_other_profiles_miss(tmu_exp, tmu_original, tmu_splits, tmp_path, caplog):
    cache = FileTwinCache(tmp_path / "twins")
    # with the predictor's work too (paper_rule_check), so that the cached features and predictor are exercised
    run = functools.partial(_run, paper_rule_check=True)
    cold, cold_model = run(tmu_original, tmu_splits, cache)
    assert cold["twin_cache"]["hit"] is False and "twin_models" in cold["stages"]
    assert len(list((tmp_path / "twins").glob("*.pt"))) == 1

    # the same request again: a hit, and exactly the model a cold run gives
    with caplog.at_level(logging.INFO, logger="oblivio.methods.tmu"):
        same, same_model = run(tmu_original, tmu_splits, cache)
    assert same["twin_cache"]["hit"] is True and "twin cache hit" in caplog.text
    assert "twin_models" not in same["stages"] and "curriculum" not in same["stages"]
    assert same["twin_features_raw"] == cold["twin_features_raw"] and same["twin_labels"] == cold["twin_labels"]
    assert same["predicted_labels"] == cold["predicted_labels"]
    assert _weights_equal(same_model, cold_model)

    # another request of the same class and size: a hit; its forget features are its own
    other = tmu_exp.unlearning_splits("class-subset:3:10", seed=1)
    assert set(other.forget.ids.tolist()) != set(tmu_splits.forget.ids.tolist())
    warm, _ = run(tmu_original, other, cache)
    assert warm["twin_cache"]["hit"] is True
    assert warm["forget_ids"] == other.forget.ids.tolist()
    assert warm["twin_features_raw"] == cold["twin_features_raw"]
    fresh, _ = run(tmu_original, other, None)
    torch.testing.assert_close(
        torch.tensor(warm["forget_features_raw"]), torch.tensor(fresh["forget_features_raw"]), atol=1e-5, rtol=1e-4
    )  # same model, same images: the cached M_o features agree

    # another class, another size bucket, another model: misses
    for spec in ("class-subset:5:10", "class-subset:3:40"):
        miss, _ = run(tmu_original, tmu_exp.unlearning_splits(spec, seed=0), cache)
        assert miss["twin_cache"]["hit"] is False, spec
    changed = copy.deepcopy(tmu_original)
    with torch.no_grad():
        changed.head.bias.add_(0.01)
    assert run(changed, tmu_splits, cache)[0]["twin_cache"]["hit"] is False
    # a different twin hyper-parameter misses, an aligned-step one does not
    tmu = create_method("tmu", n_twins=1, nf_k=3, paper_rule_check=True)
    tmu.twin_cache = cache
    tmu(
        tmu_original,
        forget=tmu_splits.forget,
        retain=tmu_splits.retain,
        holdout=tmu_splits.holdout,
        seed=0,
        progress=False,
    )
    assert tmu.info["twin_cache"]["hit"] is False
    tmu = create_method("tmu", n_twins=1, lr=0.02, paper_rule_check=True)
    tmu.twin_cache = cache
    tmu(
        tmu_original,
        forget=tmu_splits.forget,
        retain=tmu_splits.retain,
        holdout=tmu_splits.holdout,
        seed=0,
        progress=False,
    )
    assert tmu.info["twin_cache"]["hit"] is True


def test_default_skips_the_predictor_work_and_does_not_share_its_cache_entries(tmu_original, tmu_splits):
    """Issue 15's default decides by the margin, so it computes no features and trains no predictor; an entry made
    without that work is never served to a run that needs it, nor the reverse."""
    cache = MemoryTwinCache()
    lean, lean_model = _run(tmu_original, tmu_splits, cache)
    assert {"twin_models", "twin_labels", "aligned_unlearning"} <= set(lean["stages"])
    assert not {"curriculum", "twin_features", "predictor", "forget_features", "original_reference_features"} & set(
        lean["stages"]
    )
    assert lean["features"] == [] and "twin_features" not in lean and "paper_rule_labels" not in lean
    full, full_model = _run(tmu_original, tmu_splits, cache, paper_rule_check=True)
    assert full["twin_cache"]["hit"] is False and len(full["paper_rule_labels"]) == len(tmu_splits.forget)
    assert _run(tmu_original, tmu_splits, cache)[0]["twin_cache"]["hit"] is True  # each finds its own entry
    lean_only = MemoryTwinCache()
    _run(tmu_original, tmu_splits, lean_only)
    for c, hit in ((lean_only, False), (cache, True)):  # the predictor rule never reads a lean entry, a full one yes
        paper = create_method("tmu.predictor", n_twins=1)
        paper.twin_cache = c
        paper(
            tmu_original,
            forget=tmu_splits.forget,
            retain=tmu_splits.retain,
            holdout=tmu_splits.holdout,
            seed=0,
            progress=False,
        )
        assert paper.info["twin_cache"]["hit"] is hit
    # skipping the work changes nothing the margin rule decides or trains
    assert lean["predicted_labels"] == full["predicted_labels"] and lean["twin_labels"] == full["twin_labels"]
    assert _weights_equal(lean_model, full_model)


def test_a_dropout_model_gets_the_same_weights_cold_warm_and_with_the_paper_rule_check(tmu_original, tmu_splits):
    """The twin work runs in a forked RNG, so the aligned step draws the same dropout masks whether the twin work ran
    (with or without the predictor's part) or came from the cache."""
    from torch import nn

    model = copy.deepcopy(tmu_original)
    model.head = nn.Sequential(nn.Dropout(0.3), model.head)
    kw = dict(hard_count="rate")  # flips more samples: a longer aligned step, more masks drawn
    cache = MemoryTwinCache()
    cold, cold_model = _run(model, tmu_splits, cache, **kw)
    warm, warm_model = _run(model, tmu_splits, cache, **kw)
    full, full_model = _run(model, tmu_splits, None, paper_rule_check=True, **kw)
    assert warm["twin_cache"]["hit"] is True and cold["predicted_hard"] > 0
    assert cold["predicted_labels"] == warm["predicted_labels"] == full["predicted_labels"]
    assert _weights_equal(cold_model, warm_model) and _weights_equal(cold_model, full_model)
    # the predictor's own settings do not key a lean entry
    assert _run(model, tmu_splits, cache, nf_k=3, **kw)[0]["twin_cache"]["hit"] is True


def test_damaged_cache_file_is_a_miss_and_is_rewritten(tmu_original, tmu_splits, tmp_path):
    cache = FileTwinCache(tmp_path / "twins")
    _run(tmu_original, tmu_splits, cache)
    (path,) = list((tmp_path / "twins").glob("*.pt"))
    path.write_bytes(b"not a checkpoint")
    info, _ = _run(tmu_original, tmu_splits, cache)
    assert info["twin_cache"]["hit"] is False
    assert _run(tmu_original, tmu_splits, cache)[0]["twin_cache"]["hit"] is True


def test_memory_cache_and_child_model_alias(tmu_original, tmu_splits):
    from oblivio.utils import state_dict_hash

    cache = MemoryTwinCache()
    _, child = _run(tmu_original, tmu_splits, cache, paper_rule_check=True)
    with torch.no_grad():  # a child version: other weights (the tiny run may leave the model unchanged)
        child.head.bias.add_(0.01)
    tmu = create_method("tmu", n_twins=1, paper_rule_check=True)
    tmu.twin_cache, tmu.twin_cache_model = cache, state_dict_hash(tmu_original)  # the parent's twins
    tmu(child, forget=tmu_splits.forget, retain=tmu_splits.retain, holdout=tmu_splits.holdout, seed=0, progress=False)
    assert tmu.info["twin_cache"]["hit"] is True
    # the child's own M_o features were computed (the cached ones belong to the parent)
    assert "original_reference_features" in tmu.info["stages"]


# ---------------------------------------------------------------------------------------------- step-level stop
def test_aligned_step_stops_at_step_level(tmu_original, tmu_splits):
    forget, retain = tmu_splits.forget, tmu_splits.retain
    predicted = torch.ones(len(forget), dtype=torch.long)
    predicted[: len(forget) // 2] = 0
    runs = {}
    for every in (1, None):
        tmu = create_method("tmu", stop_check_steps=every, retain_fraction=1.0)
        model = tmu.aligned_unlearn(
            copy.deepcopy(tmu_original), forget=forget, retain=retain, predicted=predicted, seed=0
        )
        runs[every] = (tmu.info, model)
    step_info, step_model = runs[1]
    epoch_info, _ = runs[None]
    hard = forget.subset(torch.nonzero(predicted == 0).squeeze(1))
    assert accuracy(step_model, hard) <= 0.0 + 1e-12
    steps_per_epoch = -(-len(retain) // 64)
    # the epoch-level rule runs whole epochs; the step-level one stops inside an epoch, and earlier
    assert epoch_info["unlearn_steps"] % steps_per_epoch == 0
    assert step_info["unlearn_steps"] % steps_per_epoch != 0
    assert step_info["unlearn_steps"] < epoch_info["unlearn_steps"]
    assert step_info["unlearn_stopped_early"] and step_info["acc_forget_hard"] <= 1e-12


def test_cache_module_doctests():
    import doctest

    import oblivio.methods.tmu.cache as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
