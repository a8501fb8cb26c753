"""The verdict of a verification report: does the model behave on the forgotten samples like a model retrained
without them, within the noise floor? Read from what the ledger recorded for the version, nothing recomputed.

**Within the noise floor** (docs/workflow.md, "The verdict"): the model's accuracy on the forgotten samples ``D_f``
differs from the reference's by no more than chance explains, at the 5% level (two-sided p ≥ 0.05):

* reference **gold** (``apply --gold``: a model retrained without ``D_f`` was measured on the same samples): an
  exact McNemar test on the per-sample right/wrong outcomes. The recorded ``n_forget``, ``acc_forget``,
  ``gold_acc_forget`` and ``sample_agreement`` give the counts exactly: ``b`` samples the model gets right and gold
  wrong, ``c`` the other way round, ``b + c = n (1 - agreement)``, ``b - c = n (acc - gold acc)``; under "the two
  models are equally accurate on D_f" ``b`` is Binomial(b + c, 1/2) (``scipy.stats.binomtest``). A version recorded
  without ``sample_agreement`` falls back to the binomial test below against gold's accuracy.
* reference **twin** (no ``--gold``; TMU's twin problem estimates gold's accuracy on ``D_f``): an exact binomial
  test of the model's ``k`` correct of ``n`` against the estimated accuracy. The answer is an estimate and says so
  (the estimate itself was off by 4.3 points on average on the committed TMU Table 1 units).
* no reference: **not measured**.

With few samples the test cannot tell a real gap from noise: the verdict also gives the smallest gap (in points)
that would have counted as outside the noise floor with these counts, so "yes" on 5 samples reads as what it is.

Example:
    >>> v = noise_floor_verdict({"alignment_reference": "gold", "n_forget": 100, "acc_forget": 0.93,
    ...                          "gold_acc_forget": 0.85, "sample_agreement": 0.92})
    >>> v["answer"], v["b"], v["c"], round(v["p_value"], 4)
    ('no', 8, 0, 0.0078)
    >>> noise_floor_verdict({"alignment_reference": "none", "n_forget": 100, "acc_forget": 0.9})["answer"]
    'not measured'
"""

from __future__ import annotations

import math
from typing import Any

ALPHA = 0.05
"""Two-sided level of the noise-floor test."""

TWIN_MEAN_ERROR_POINTS = 4.3
"""Mean absolute error of the twin estimate of gold's forget accuracy on the 30 units of the committed TMU Table 1
(docs/results/tmu-table1.jsonl; see :func:`oblivio.ledger.verification.twin_estimate`)."""


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _p_mcnemar(b: int, c: int) -> float:
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def _p_binomial(k: int, n: int, p: float) -> float:
    from scipy.stats import binomtest

    return float(binomtest(k, n, min(max(p, 0.0), 1.0)).pvalue)


def _smallest_gap_mcnemar(d: int, *, alpha: float) -> int | None:
    """The smallest |b - c| (same parity as d) with p < alpha among d discordant samples; None if none is.

    For p = 1/2 the exact two-sided p of ``min(b, c) = j`` is ``min(1, 2 P(X <= j))``, X ~ Binomial(d, 1/2)."""
    import numpy as np
    from scipy.stats import binom

    if d == 0:
        return None
    j = np.arange(d // 2 + 1)
    p = np.minimum(1.0, 2 * binom.cdf(j, d, 0.5))
    ok = j[p < alpha]
    return None if ok.size == 0 else int(d - 2 * ok.max())


def _smallest_gap_binomial(n: int, p: float, *, alpha: float) -> int | None:
    """The smallest |k - n p| (in samples, rounded up) with a two-sided p < alpha; None if no k is that far.

    Two-sided p as scipy's ``binomtest``: the probability of every outcome no likelier than k."""
    import numpy as np
    from scipy.stats import binom

    k = np.arange(n + 1)
    pmf = binom.pmf(k, n, min(max(p, 0.0), 1.0))
    order = np.sort(pmf)
    pvals = np.cumsum(order)[np.searchsorted(order, pmf * (1 + 1e-7), side="right") - 1]
    far = k[pvals < alpha]
    return None if far.size == 0 else int(np.ceil(np.min(np.abs(far - n * p)) - 1e-9))


def noise_floor_verdict(metrics: dict[str, Any], *, alpha: float = ALPHA) -> dict[str, Any]:
    """The answer (``"yes"``, ``"no"``, ``"not measured"``) and the numbers behind it (see the module docstring).

    Returns a dict: ``answer``, ``reference`` (``gold``, ``twin``, ``none``), ``estimated`` (True for the twin
    reference), ``test`` (its name), ``n``, ``model_correct``, ``model_acc`` and ``reference_acc`` (fractions),
    ``gap_points`` (|model - reference| in percentage points), ``p_value``, ``alpha``, ``smallest_gap_points``
    (the smallest gap this test could tell from noise here; None if none), ``b``/``c`` (gold only),
    ``sentence`` (the answer in plain words) and ``detail`` (the sentence without its yes / no head).
    """
    ref = metrics.get("alignment_reference", "none")
    n = metrics.get("n_forget")
    acc = _num(metrics.get("acc_forget"))
    out: dict[str, Any] = {"answer": "not measured", "reference": ref, "estimated": False, "alpha": alpha}
    if ref not in ("gold", "twin") or not isinstance(n, int) or n <= 0 or acc is None:
        out["reference"] = "none" if ref not in ("gold", "twin") else ref
        out["sentence"] = (
            "Not measured: no retrained (gold) model and no estimate of one was recorded for this version. "
            "Run oblivio request apply --gold to measure it."
        )
        return out
    k = round(acc * n)
    ref_acc = _num(metrics.get("gold_acc_forget" if ref == "gold" else "twin_est_gold_acc_forget"))
    if ref_acc is None:
        out["sentence"] = f"Not measured: the {ref} reference's accuracy on the forgotten samples was not recorded."
        return out
    out.update(n=n, model_correct=k, model_acc=acc, reference_acc=ref_acc, gap_points=100 * abs(acc - ref_acc))
    agreement = _num(metrics.get("sample_agreement")) if ref == "gold" else None
    b = c = None
    if agreement is not None:
        d = round((1 - agreement) * n)
        diff = k - round(ref_acc * n)
        if d >= abs(diff) and (d - diff) % 2 == 0:
            b, c = (d + diff) // 2, (d - diff) // 2
    if b is not None and c is not None:
        gap = _smallest_gap_mcnemar(b + c, alpha=alpha)
        out.update(
            test="exact McNemar test on the per-sample right/wrong outcomes against the retrained model",
            b=b,
            c=c,
            p_value=_p_mcnemar(b, c),
            smallest_gap_points=None if gap is None else 100 * gap / n,
        )
    else:
        gap = _smallest_gap_binomial(n, ref_acc, alpha=alpha)
        what = "the retrained model's" if ref == "gold" else "the estimated"
        out.update(
            test=f"exact binomial test of the model's correct count against {what} accuracy",
            p_value=_p_binomial(k, n, ref_acc),
            smallest_gap_points=None if gap is None else 100 * gap / n,
        )
    out["estimated"] = ref == "twin"
    out["answer"] = "yes" if out["p_value"] >= alpha else "no"
    head, detail = _sentence(out)
    out["detail"], out["sentence"] = detail, f"{head}. {detail}"
    return out


def _sentence(v: dict[str, Any]) -> tuple[str, str]:
    """The answer's head ("Yes, within the noise floor") and the numbers behind it, in words."""
    if v["answer"] == "yes":
        head = "Yes, within the noise floor" + (" (estimated)" if v["estimated"] else "")
    else:
        head = "No, outside the noise floor" + (" (estimated)" if v["estimated"] else "")
    n, small = v["n"], v.get("smallest_gap_points")
    if v["reference"] == "gold":
        ref = "a model retrained without them (gold, measured)"
    else:
        ref = "a retrained model as TMU's twin problem estimates it (none was trained)"
    text = (
        f"On the {n} forgotten samples the model gets {100 * v['model_acc']:.1f}% right, {ref} "
        f"{100 * v['reference_acc']:.1f}%: a gap of {v['gap_points']:.1f} points"
    )
    if "b" in v:
        d = v["b"] + v["c"]
        text += (
            f"; the two disagree on {d} sample{'s' if d != 1 else ''} ({v['b']} right only by the model, {v['c']} "
            f"only by the retrained model), p = {v['p_value']:.2g} (exact McNemar test)."
        )
        if small is not None:
            text += f" With {d} disagreements a gap of {small:.1f} points or more would have counted as outside."
        elif d:
            text += f" With {d} disagreement{'s' if d != 1 else ''} no gap can count as outside: read the numbers."
    else:
        text += f", p = {v['p_value']:.2g} (exact binomial test)."
        text += (
            f" With {n} samples a gap under {small:.1f} points cannot be told from noise."
            if small is not None
            else f" With {n} samples no gap can be told from noise: the answer says little."
        )
    if v["estimated"]:
        text += (
            f" The estimate itself was off by {TWIN_MEAN_ERROR_POINTS} points on average where it was checked; "
            "oblivio request apply --gold measures it."
        )
    return head, text


def cost_summary(metrics: dict[str, Any], *, method_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's wall and CPU seconds and, with ``--gold``, retraining's seconds and the ratio, plus a sentence."""
    seconds = _num(metrics.get("seconds"))
    gold = _num(metrics.get("gold_seconds"))
    ratio = _num(metrics.get("cost_ratio"))
    cpu = _num((method_info or {}).get("cpu_seconds"))
    out: dict[str, Any] = {"seconds": seconds, "cpu_seconds": cpu, "gold_seconds": gold, "ratio": ratio}
    if seconds is None:
        out["sentence"] = "Cost not recorded."
        return out
    text = f"{seconds:.1f} s of wall time" + (f" ({cpu:.1f} CPU s)" if cpu is not None else "")
    if gold is not None and ratio is not None:
        rel = f"{100 * ratio:.0f}% of" if ratio < 1 else f"{ratio:.1f}×"
        text += f", {rel} retraining's {gold:.1f} s"
    else:
        text += "; retraining was not timed (run apply with --gold to compare)"
    out["sentence"] = text + "."
    return out


__all__ = ["ALPHA", "TWIN_MEAN_ERROR_POINTS", "cost_summary", "noise_floor_verdict"]
