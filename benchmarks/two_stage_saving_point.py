"""Two-stage Table 3 with a real scratch saving point: epochs to the best-on-validation checkpoint of the two-stage
retrained model against a model trained from scratch with the same recipe, validation set and checkpoint rule.

``oblivio bench two-stage`` compares with the gold model, which keeps no saving point; this script trains the
scratch model with ``KeepBest`` too (``oblivio.experiments.analyses.saving_point_comparison``).

    python benchmarks/two_stage_saving_point.py                  # CPU preset, forget ratios 5% and 10%
    python benchmarks/two_stage_saving_point.py --method two-stage.max --ratios 0.01,0.1 --preset tiny
"""

from __future__ import annotations

import argparse

from oblivio.cli.common import print_table
from oblivio.experiments import Experiment
from oblivio.experiments.analyses import saving_point_comparison
from oblivio.methods import create_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--ratios", default="0.05,0.1", help="forget ratios (random:p requests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--method",
        default="two-stage",
        help="two-stage or one of its named variants (two-stage.max, two-stage.softmax, two-stage.recipe-sgd)",
    )
    parser.add_argument(
        "--grad-clip", type=float, default=None, help="retraining gradient-norm clip (default: the method's, 5)"
    )
    args = parser.parse_args()
    exp = Experiment(args.preset, progress=False)
    original = exp.original()
    rows = []
    for ratio in (float(r) for r in args.ratios.split(",")):
        splits = exp.unlearning_splits(f"random:{ratio:g}", seed=args.seed)
        clip = {} if args.grad_clip is None else {"grad_clip": args.grad_clip}
        method = create_method(args.method, recipe=exp.config.recipe, **clip)
        _, _, cmp = saving_point_comparison(
            original, forget=splits.forget, retain=splits.retain, holdout=splits.holdout, method=method, seed=args.seed
        )
        rows.append(
            {
                "forget ratio": f"{ratio:.0%}",
                "two-stage saving point": f"{cmp.two_stage_saving_point}/{cmp.two_stage_epochs}",
                "scratch saving point": f"{cmp.scratch_saving_point}/{cmp.scratch_epochs}",
                "two-stage val acc": 100 * cmp.two_stage_val_acc,
                "scratch val acc": 100 * cmp.scratch_val_acc,
                "neutralisation epochs": cmp.neutralisation_epochs,
                "two-stage s": cmp.two_stage_seconds,
                "two-stage ACC_Df (id/hflip/vflip/crop)": "/".join(
                    f"{100 * v:.1f}" for v in cmp.two_stage_tta.values()
                ),
                "scratch ACC_Df (id/hflip/vflip/crop)": "/".join(f"{100 * v:.1f}" for v in cmp.scratch_tta.values()),
            }
        )
    print(f"preset {args.preset}: {exp.describe()}; chance = {100 / exp.data.num_classes:.1f}%")
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
