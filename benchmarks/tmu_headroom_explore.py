"""Issue 23 exploration: how much room each protocol leaves, which held-out evidence predicts the gold distribution,
and why TMU's aligned step drags images along. Exploration seeds only (the pre-registered run uses others).

Subcommands (each appends rows with provenance to ``--out``; a rerun skips finished keys):

* ``run``: the methods on a unit through the grid runner with ``EvalOptions(gold_models=G)``: E, E*, δ to the mean gold,
  activation distance to the mean gold output, for every method, the original and the held-out gold;
* ``auc``: per unit, each decision score (``M_o``'s margin, the K-fold held-out margin, the training dynamics) as a
  predictor of the gold distribution: AUC against ``p_i`` (each image a positive of weight ``p_i`` and a negative of
  weight ``1 − p_i``: the probability that a random easy draw outranks a random hard one) and against the majority
  label (``p_i ≥ 1/2``), and the label agreement of its decision with the Bayes decision;
* ``stability``: the methods on one fixed request with several unlearning seeds (each method's own spread);
* ``drag``: TMU's aligned step after a fixed decision: per kept forget image, the change of its margin and whether it
  flipped, against its cosine similarity (``M_o``'s penultimate features) to the images chosen to flip; and E after
  the step for each remedy (targets, distillation on ``D_r``) with that same decision.

Usage::

    python benchmarks/tmu_headroom_explore.py run --seed 50 --request class-subset:6:100 --out results/explore.jsonl
    python benchmarks/tmu_headroom_explore.py auc --seed 50 --request class-subset:6:100 --out results/explore.jsonl
    python benchmarks/tmu_headroom_explore.py drag --seed 50 --request class-subset:6:100 --out results/explore.jsonl
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

METHODS = (
    "tmu",
    "tmu.guarded",
    "tmu.kfold",
    "tmu.kfold-soft",
    "tmu.aum",
    "tmu.aum-kfold",
    "tmu.aum-kfold-soft",
    "tmu.kfold+aum",
    "tmu.kfold+aum-soft",
    "tmu.random-control",
    "finetune",
    "finetune.1ep",
    "gold",
)
SCORES = ("margin", "kfold", "aum", "learned", "forgetting", "kfold+aum")
REMEDIES = {
    # name: TMU hyper-parameters of the aligned step (the decision is fixed outside)
    "runner-up (default)": {},
    "random wrong label (paper)": {"hard_targets": "random-label"},
    "held-out soft, hard only": {"hard_targets": "kfold-soft"},
    "held-out soft, hard and kept": {"hard_targets": "kfold-soft", "easy_targets": "kfold-soft"},
    "runner-up + KD on D_r 0.5": {"retain_kd": 0.5},
    "held-out soft + KD on D_r 0.5": {"hard_targets": "kfold-soft", "easy_targets": "kfold-soft", "retain_kd": 0.5},
}


def soft_auc(scores, p) -> float:
    """AUC of ``scores`` against the gold distribution: image ``i`` is a positive (easy) of weight ``p_i`` and a
    negative of weight ``1 − p_i`` (scikit-learn's weighted ROC AUC)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    s, q = np.asarray(scores, dtype=float), np.asarray(p, dtype=float)
    y = np.r_[np.ones_like(q), np.zeros_like(q)]
    w = np.r_[q, 1 - q]
    keep = w > 0
    if len(set(y[keep])) < 2:
        return float("nan")
    return float(roc_auc_score(y[keep], np.r_[s, s][keep], sample_weight=w[keep]))


def shortfall(right, keep, right_before, p, g: int) -> dict:
    """Where an aligned step misses its decision, and what each kind of miss costs in E.

    ``right``: the unlearned model right on each forget image; ``keep``: the decision (True: stay right, False:
    chosen to flip); ``right_before``: the original right; ``p``: the gold distribution; ``g``: gold models.
    Returns ``{kind: (images, E lost in gold-vote counts)}`` for the three kinds of miss: ``hard_unflipped`` (chosen
    to flip, still right), ``collateral`` (kept, right before, flipped by the step) and ``kept_wrong_from_start``
    (kept, wrong before and after). A miss on image i costs ``|2 p_i − 1| · g`` votes, signed (a miss where the
    decision was wrong gains); the three costs sum to ``n · g · (E_decision − E)``."""
    import numpy as np

    right, keep, before, p = (np.asarray(x) for x in (right, keep, right_before, p))
    miss = right != keep
    cost = np.where(right, 1 - 2 * p, 2 * p - 1) * g
    parts = {
        "hard_unflipped": miss & ~keep,
        "collateral": miss & keep & before,
        "kept_wrong_from_start": miss & keep & ~before,
    }
    return {k: (int(v.sum()), float(cost[v].sum())) for k, v in parts.items()}


def _unit(a):
    from oblivio.experiments.grid import Seeds, gold_distribution_seeds
    from oblivio.experiments.pipeline import Experiment

    exp = Experiment(a.preset, store=a.store, progress=False)
    seeds = Seeds.for_replicate(0, base=a.seed)
    split = exp.forget_split(a.request, seed=seeds.request)
    splits = exp.unlearning_splits(split)
    golds = [exp.gold(split, seed=g) for g in gold_distribution_seeds(seeds.gold, a.gold_models)]
    return exp, seeds, split, splits, golds


def _right(model, data):
    from oblivio.training.evaluate import predict_logits

    return (predict_logits(model, data).argmax(1) == data.labels).numpy()


def cmd_run(a) -> None:
    from oblivio.experiments.grid import EvalOptions, Grid, Seeds
    from oblivio.experiments.runner import Runner

    grid = Grid(
        scenarios=[a.request],
        methods=list(a.methods.split(",")),
        seeds=[Seeds.for_replicate(0, base=a.seed)],
        options=EvalOptions(mia=False, zrf=False, gold_models=a.gold_models),
    )
    runner = Runner(
        a.preset, results=a.out, store=a.store, tags={"benchmark": "tmu-headroom-explore"}, threads_per_worker=1
    )
    for r in runner.run(grid):
        m = r.get("metrics") or {}
        print(
            f"{r['method']:20s} E {100 * m.get('expected_agreement', float('nan')):5.1f} "
            f"(E* {100 * m.get('expected_agreement_best', float('nan')):5.1f}, original "
            f"{100 * m.get('original_expected_agreement', float('nan')):5.1f}) δ_mean "
            f"{100 * m.get('delta_mean_gold', float('nan')):5.1f} act_mean "
            f"{m.get('activation_distance_mean_gold_l2', float('nan')):.3f} cpu "
            f"{(r.get('info') or {}).get('cpu_seconds', float('nan')):.1f}",
            flush=True,
        )


def cmd_stability(a) -> None:
    """The methods on one fixed request with ``--unlearn-seeds`` unlearning seeds (everything else fixed): each
    method's spread over its own seeds (item 6)."""
    from oblivio.experiments.grid import EvalOptions, Grid, Seeds
    from oblivio.experiments.runner import Runner

    base = Seeds.for_replicate(0, base=a.seed)
    seeds = [
        Seeds(train=base.train, gold=base.gold, unlearn=int(u), eval=base.eval, request=base.request)
        for u in a.unlearn_seeds.split(",")
    ]
    grid = Grid(
        scenarios=[a.request],
        methods=[m for m in a.methods.split(",") if m != "gold"],
        seeds=seeds,
        options=EvalOptions(mia=False, zrf=False, gold_models=a.gold_models),
    )
    runner = Runner(a.preset, results=a.out, store=a.store, tags={"benchmark": "tmu-headroom-stability"})
    runner.run(grid)


def cmd_auc(a) -> None:
    import numpy as np
    import torch

    from oblivio.experiments.rows import append_row, provenance, read_results
    from oblivio.methods.tmu.aligned import true_class_margin
    from oblivio.methods.tmu.evidence import HeldOutEvidence, evidence_scores
    from oblivio.training.evaluate import predict_logits

    exp, seeds, split, splits, golds = _unit(a)
    forget = splits.forget
    p = np.mean([_right(g, forget) for g in golds], axis=0)
    bayes = p >= 0.5
    held = exp.kfold_evidence(seed=seeds.train, folds=a.folds)
    ev = HeldOutEvidence(ids=held["ids"], kfold_logits=held["logits"], folds=a.folds)
    ev.dynamics = exp.original_dynamics(seed=seeds.train, recompute=True)
    original = exp.original(seed=seeds.train)
    done = {r["key"] for r in read_results(a.out, only_ok=False)}
    prov = provenance()
    for name in SCORES:
        key = f"auc:{a.preset}:{a.seed}:{a.request}:{name}:{a.folds}:{a.gold_models}"
        if key in done:
            continue
        if name == "margin":
            s = true_class_margin(predict_logits(original, forget), forget.labels)
        else:
            s = evidence_scores(ev, name, ids=forget.ids, labels=forget.labels)
        s = np.asarray(s, dtype=float)
        row = {
            "key": key,
            "kind": "auc",
            "preset": a.preset,
            "seed": a.seed,
            "scenario": a.request,
            "n_forget": len(forget),
            "gold_models": a.gold_models,
            "score": name,
            "auc_vs_p": soft_auc(s, p),
            "auc_vs_majority": soft_auc(s, bayes.astype(float)),
            "headroom": float(np.maximum(p, 1 - p).mean() - p.mean()),
            "gold_mean_acc": float(p.mean()),
            "majority_wrong": int((~bayes).sum()),
            "provenance": prov,
        }
        if name in ("kfold", "margin"):  # the score's own decision: held-out wrong / M_o wrong
            decision = s >= 0
            row["decision_hard"] = int((~decision).sum())
            row["decision_bayes_agreement"] = float((decision == bayes).mean())
            row["decision_E"] = float(np.where(decision, p, 1 - p).mean())
        append_row(a.out, row)
        print(f"{name:12s} AUC vs p {row['auc_vs_p']:.3f}  vs majority {row['auc_vs_majority']:.3f}", flush=True)
    held_acc = float((ev.kfold_for(forget.ids).argmax(1) == forget.labels).double().mean())
    print(
        f"held-out K-fold accuracy on D_f {held_acc:.3f}, gold mean {p.mean():.3f}, "
        f"majority-wrong {int((~bayes).sum())}"
    )
    del torch


def cmd_drag(a) -> None:
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from oblivio.experiments.rows import append_row, provenance, read_results
    from oblivio.methods import create_method
    from oblivio.methods.tmu.aligned import decide_from_evidence, true_class_margin
    from oblivio.methods.tmu.evidence import HeldOutEvidence
    from oblivio.metrics.gold_distribution import expected_agreement, mean_gold_output_distance
    from oblivio.training.evaluate import predict_features, predict_logits

    exp, seeds, split, splits, golds = _unit(a)
    forget, retain = splits.forget, splits.retain
    p = np.mean([_right(g, forget) for g in golds], axis=0)
    gold_logits = [predict_logits(g, forget).double().numpy() for g in golds]
    held = exp.kfold_evidence(seed=seeds.train, folds=a.folds)
    ev = HeldOutEvidence(ids=held["ids"], kfold_logits=held["logits"], folds=a.folds)
    ev.dynamics = exp.original_dynamics(seed=seeds.train, recompute=True)
    original = exp.original(seed=seeds.train)
    decisions = {"bayes (oracle)": torch.as_tensor(p >= 0.5).long()}
    for score in ("kfold", "aum", "kfold+aum"):  # each ranking at the K-fold count (tmu.kfold, .aum-kfold, .kfold+aum)
        info: dict = {}
        decisions[score] = decide_from_evidence(
            info, hard_score=score, hard_count="evidence", evidence=ev, labels_tw=None, forget=forget
        )
    m0 = true_class_margin(predict_logits(original, forget), forget.labels).numpy()
    feats = torch.nn.functional.normalize(predict_features(original, forget).double(), dim=1)
    done = {r["key"] for r in read_results(a.out, only_ok=False)}
    prov = provenance()
    for dname, decision in decisions.items():
        hard = decision == 0
        if not hard.any():
            continue
        sim = (feats @ feats[hard].T).max(1).values.numpy()  # max cosine similarity to an image chosen to flip
        for rname, hp in REMEDIES.items():
            key = f"drag3:{a.preset}:{a.seed}:{a.request}:{dname}:{rname}:{a.folds}:{a.gold_models}"
            if key in done:
                continue
            method = create_method("tmu", **hp)
            method.evidence = ev
            method.info = {}
            t0 = time.process_time()
            model = method.aligned_unlearn(
                copy.deepcopy(original), forget=forget, retain=retain, predicted=decision, seed=seeds.unlearn
            )
            cpu = time.process_time() - t0
            z = predict_logits(model, forget)
            right = (z.argmax(1) == forget.labels).numpy()
            m1 = true_class_margin(z, forget.labels).numpy()
            kept = ~hard.numpy()
            collateral = kept & (m0 > 0) & ~right  # kept images the step flipped
            # which chosen images pull: those gold mostly gets right (wrongly chosen) or mostly wrong (rightly chosen)
            false_hard = hard.numpy() & (p >= 0.5)
            near_false = (
                (feats @ feats[torch.as_tensor(false_hard)].T).max(1).values.numpy() if false_hard.any() else None
            )
            true_hard = hard.numpy() & (p < 0.5)
            near_true = (feats @ feats[torch.as_tensor(true_hard)].T).max(1).values.numpy() if true_hard.any() else None
            misses = shortfall(right, decision.numpy() == 1, m0 > 0, p, len(golds))
            terciles = np.quantile(sim[kept], [1 / 3, 2 / 3]) if kept.sum() >= 3 else [np.inf, np.inf]
            bins = np.digitize(sim[kept], terciles)
            row = {
                "key": key,
                "kind": "drag",
                "preset": a.preset,
                "seed": a.seed,
                "scenario": a.request,
                "decision": dname,
                "remedy": rname,
                "hparams": hp,
                "n_forget": len(forget),
                "n_hard": int(hard.sum()),
                "E": expected_agreement(right, p),
                "E_best": float(np.maximum(p, 1 - p).mean()),
                "E_decision": float(np.where(decision.numpy() == 1, p, 1 - p).mean()),
                "act_mean_gold": mean_gold_output_distance(z.double().numpy(), gold_logits),
                "hard_flipped": float((~right[hard.numpy()]).mean()),
                "collateral_flips": int(collateral.sum()),
                "collateral_by_similarity_tercile": [int(collateral[kept][bins == b].sum()) for b in range(3)],
                "spearman_dmargin_vs_similarity": float(spearmanr(m1[kept] - m0[kept], sim[kept]).statistic)
                if kept.sum() > 2
                else None,
                "mean_dmargin_kept": float((m1[kept] - m0[kept]).mean()),
                "n_false_hard": int(false_hard.sum()),
                "collateral_nearer_false_hard": int((collateral & (near_false > near_true)).sum())
                if near_false is not None and near_true is not None
                else None,
                "kept_nearer_false_hard": int((kept & (near_false > near_true)).sum())
                if near_false is not None and near_true is not None
                else None,
                "spearman_dmargin_vs_similarity_to_false_hard": float(
                    spearmanr(m1[kept] - m0[kept], near_false[kept]).statistic
                )
                if near_false is not None and kept.sum() > 2
                else None,
                "misses": {k: n for k, (n, _) in misses.items()},
                "miss_cost_counts": {k: c for k, (_, c) in misses.items()},
                "unlearn_steps": method.info.get("unlearn_steps"),
                "cpu_seconds": cpu,
                "acc_test": float(_right(model, splits.test).mean()),
                "provenance": prov,
            }
            append_row(a.out, row)
            print(
                f"{dname:15s} {rname:32s} E {100 * row['E']:5.1f} (decision {100 * row['E_decision']:5.1f}, E* "
                f"{100 * row['E_best']:5.1f}) collateral {row['collateral_flips']:3d} by sim tercile "
                f"{row['collateral_by_similarity_tercile']} rho {row['spearman_dmargin_vs_similarity']} misses "
                f"{row['misses']} cost {row['miss_cost_counts']}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("run", "auc", "drag", "stability"))
    p.add_argument("--preset", default="cpu")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--request", required=True)
    p.add_argument("--gold-models", type=int, default=4)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--unlearn-seeds", default="10050,10051,10052,10053,10054", help="for stability")
    p.add_argument("--store", default=None)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    {"run": cmd_run, "auc": cmd_auc, "drag": cmd_drag, "stability": cmd_stability}[a.command](a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
