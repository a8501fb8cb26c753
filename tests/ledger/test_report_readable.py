"""The verification report a privacy officer reads (issue 24 item 3): a verdict first (what was forgotten, whether
the model behaves like a retrained one within the noise floor, what it cost), then the requests; percent with units;
hyper-parameters beside their defaults; reports readable by others (0644).

The noise-floor oracle is written from the definition in docs/workflow.md alone: per-sample right/wrong vectors,
the discordant counts read off them, scipy's exact binomial test. It shares nothing with oblivio.ledger.verdict,
which only sees the aggregates the ledger records."""

from __future__ import annotations

import math
import re
import stat
from datetime import datetime

import numpy as np
import pytest
from scipy.stats import binomtest

from oblivio.ledger.db import RequestRecord, RunRecord, VersionRecord
from oblivio.ledger.report import build_report, render_html, write_report
from oblivio.ledger.verdict import noise_floor_verdict

T0 = datetime(2026, 12, 5, 9, 30)


def _recorded(model_right: np.ndarray, gold_right: np.ndarray) -> dict:
    """What evaluate_unlearning records for a version with --gold (fractions over D_f)."""
    return {
        "alignment_reference": "gold",
        "n_forget": int(model_right.size),
        "acc_forget": float(model_right.mean()),
        "gold_acc_forget": float(gold_right.mean()),
        "delta_forget": abs(float(model_right.mean() - gold_right.mean())),
        "sample_agreement": float((model_right == gold_right).mean()),
    }


@pytest.mark.parametrize("seed", range(12))
def test_gold_verdict_matches_an_exact_mcnemar_test_on_the_per_sample_outcomes(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    gold_right = rng.random(n) < rng.uniform(0.5, 1.0)
    flip = rng.random(n) < rng.uniform(0.0, 0.15)  # the model differs from gold on some samples...
    bias = rng.random(n) < rng.uniform(0.0, 0.5)  # ...mostly by being right where gold is wrong
    model_right = np.where(flip, ~gold_right, gold_right) | (bias & ~gold_right & (seed % 3 == 0))
    b = int(np.sum(model_right & ~gold_right))
    c = int(np.sum(~model_right & gold_right))
    p = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    v = noise_floor_verdict(_recorded(model_right, gold_right))
    assert (v["b"], v["c"]) == (b, c)
    assert v["p_value"] == pytest.approx(p)
    assert v["answer"] == ("yes" if p >= 0.05 else "no")
    assert v["gap_points"] == pytest.approx(100 * abs(b - c) / n)
    # the smallest gap that would have counted, by brute force over every split of the b + c disagreements
    d = b + c
    gaps = [abs(x - (d - x)) for x in range(d + 1) if binomtest(x, d, 0.5).pvalue < 0.05] if d else []
    expected = 100 * min(gaps) / n if gaps else None
    assert v["smallest_gap_points"] == (pytest.approx(expected) if expected is not None else None)


def test_gold_verdicts_on_known_counts():
    ones, zeros = np.ones(100, bool), np.zeros(100, bool)
    gold = ones.copy()
    gold[:15] = False  # gold gets 85 of 100
    model = gold.copy()
    model[:8] = True  # 8 more right than gold, all on gold's mistakes: b = 8, c = 0, p = 2 / 2^8
    v = noise_floor_verdict(_recorded(model, gold))
    assert v["answer"] == "no" and v["p_value"] == pytest.approx(2 / 2**8)
    assert v["sentence"].startswith("No, outside the noise floor") and "8.0 points" in v["sentence"]
    same = noise_floor_verdict(_recorded(gold, gold))
    assert same["answer"] == "yes" and same["p_value"] == 1.0 and same["b"] == same["c"] == 0
    assert noise_floor_verdict(_recorded(ones, zeros))["answer"] == "no"


def test_twin_verdict_is_an_estimated_binomial_test():
    n, k, est = 40, 38, 0.80
    v = noise_floor_verdict(
        {"alignment_reference": "twin", "n_forget": n, "acc_forget": k / n, "twin_est_gold_acc_forget": est}
    )
    p = binomtest(k, n, est).pvalue
    assert v["estimated"] and v["p_value"] == pytest.approx(p)
    assert v["answer"] == ("yes" if p >= 0.05 else "no") == "no"
    assert "(estimated)" in v["sentence"] and "--gold" in v["sentence"]
    far = [abs(j - n * est) for j in range(n + 1) if binomtest(j, n, est).pvalue < 0.05]
    assert v["smallest_gap_points"] == pytest.approx(100 * math.ceil(min(far) - 1e-9) / n)


def test_without_a_reference_the_answer_is_not_measured():
    for ref in ("none", None):
        metrics = {"n_forget": 50, "acc_forget": 0.9} | ({"alignment_reference": ref} if ref else {})
        v = noise_floor_verdict(metrics)
        assert v["answer"] == "not measured" and "--gold" in v["sentence"]


# ---------------------------------------------------------------------------------------------- the page
def _request(i, n, *, version, reason=None):
    return RequestRecord(i, f"user{i}@example.org", T0, tuple(range(10 * i, 10 * i + n)), reason, "applied", None,
                         version - 1, version, version - 1)  # fmt: skip


def _version_and_run(metrics, *, method="finetune", hparams=None):
    run = RunRecord(
        2, (2,), method, hparams if hparams is not None else {"epochs": 1, "lr": 0.01, "momentum": 0.9,
        "weight_decay": 0.0005, "batch_size": 256, "optimizer": "sgd"}, 0, 2, 3, 26, T0, T0, 3.5, "succeeded", None,
    )  # fmt: skip
    version = VersionRecord(3, "ab" * 32, "models/run00002-abab.pt", 2, 2, T0, tuple(range(26)), metrics, True)
    return version, run


GOLD_METRICS = {
    "alignment_reference": "gold",
    "n_forget": 26,
    "acc_forget": 25 / 26,
    "gold_acc_forget": 24 / 26,
    "sample_agreement": 25 / 26,
    "delta_forget": 1 / 26,
    "acc_retain": 0.9296,
    "gold_acc_retain": 0.9273,
    "acc_test": 0.9111,
    "gold_acc_test": 0.8933,
    "mia_loss_lr_acc": 0.45,
    "gold_mia_loss_lr_acc": 0.45,
    "activation_distance_l2": 0.1159,
    "js_divergence": 0.029,
    "seconds": 3.5,
    "gold_seconds": 70.0,
    "cost_ratio": 0.05,
    "method_info": {"cpu_seconds": 1.4, "epochs": 1, "twin_rule_agreement": 0.9},
}


def test_the_page_opens_with_the_verdict_then_the_requests():
    version, run = _version_and_run(GOLD_METRICS)
    forgotten = [_request(1, 15, version=2, reason="GDPR art. 17"), _request(2, 11, version=3)]
    report = build_report(version, run, forgotten[1:], forgotten_requests=forgotten)
    page = render_html(report)
    body = page[page.index("<body>") :]
    i_verdict, i_requests, i_details = (body.index(s) for s in ('id="verdict"', 'id="requests"', "<h2>Details"))
    assert i_verdict < i_requests < i_details
    verdict = body[i_verdict:i_requests]
    assert "yes, within the noise floor" in verdict
    assert "26 training samples from 2 requests (#1, #2); this run served #2 (11 samples)" in verdict
    assert "96.2% right" in verdict and "92.3%" in verdict  # percent, with the numbers
    assert "5% of retraining&#x27;s 70.0 s" in verdict  # what it cost
    requests = body[i_requests:i_details]
    assert "GDPR art. 17" in requests and "this run" in requests and "version 2" in requests
    assert report["verdict"]["answer"] == "yes" and report["forgotten"]["samples"] == 26


def test_percent_everywhere_with_units_and_labels():
    version, run = _version_and_run(GOLD_METRICS)
    page = render_html(build_report(version, run, []))
    assert "96.15" in page and "0.9615" not in page and "0.45" not in page.replace("0.4500", "")
    assert re.search(
        r"<td>Accuracy on the forgotten samples \(D_f\) <code>acc_forget</code></td><td class=unit>%", page
    )
    assert "<th class=num>this model</th>" in page and "<th>unit</th>" in page
    # internal names get labels (one mapping), the name stays beside them
    assert (
        "Decision rule&#x27;s agreement with the twin set&#x27;s gold labels <code>twin_rule_agreement</code>" in page
    )
    assert re.search(r"twin_rule_agreement</code></td><td class=unit>%</td><td class=num>90\.00", page)


def test_hyper_parameters_are_a_table_with_non_defaults_marked():
    version, run = _version_and_run(GOLD_METRICS)
    report = build_report(version, run, [])
    rows = {r["key"]: r for r in report["hparams"]}
    assert rows["epochs"]["changed"] is True and rows["epochs"]["default"] == 10  # finetune's reference default
    assert rows["lr"]["changed"] is False and report["hparams"][0]["key"] == "epochs"  # changed values first
    assert rows["lr"]["description"] == "learning rate."  # from the method's own docstring
    page = render_html(report)
    assert re.search(r"<tr class=changed><td><span class=mark[^>]*>&#9679;</span> Epochs <code>epochs</code>", page)
    assert "1 of 6 values differ from the defaults of the registered method &#x27;finetune&#x27;" in page
    assert '{"batch_size"' not in page  # no JSON blob
    unknown = render_html(build_report(*_version_and_run(GOLD_METRICS, method="not-registered"), []))
    assert "its defaults are unknown" in unknown


def test_the_na_caption_appears_only_under_values_that_are_na():
    version, run = _version_and_run(GOLD_METRICS)
    assert "n/a" not in render_html(build_report(version, run, []))
    small = dict(GOLD_METRICS, mia_skipped="the loss MIA needs at least 10 forget samples", mia_loss_lr_acc=None)
    page = render_html(build_report(*_version_and_run(small), []))
    mia = page[page.index("<h3>Membership inference") :]
    assert "n/a: not computable here: the loss MIA needs at least 10 forget samples" in mia
    assert "n/a" not in page[page.index("<h3>Accuracy") : page.index("<h3>Membership inference")]


def test_reports_are_written_0644(tmp_path):
    version, run = _version_and_run(GOLD_METRICS)
    paths = write_report(build_report(version, run, []), tmp_path / "out")
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_many_requests_keep_the_verdict_short():
    version, run = _version_and_run(GOLD_METRICS)
    many = [_request(i, 1, version=3) for i in range(1, 41)]
    page = render_html(build_report(version, run, many[-3:], forgotten_requests=many))
    verdict = page[page.index('id="verdict"') : page.index('id="requests"')]
    assert "(#1, #2, #3, #4, #5, #6, #7, #8 and 32 more); this run served #38, #39, #40 (3 samples)" in verdict
    assert page.count("<td>#") == 40  # the request table lists every one


def test_the_sqlite_ledger_file_is_private(tmp_path):
    """Reports are shared (0644); the ledger database names requesters and their ids: 0600, like the model files."""
    from oblivio.ledger.db import Ledger

    db = tmp_path / "ledger.db"
    Ledger(f"sqlite:///{db}").dispose()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
