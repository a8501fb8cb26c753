"""Report tables from a hand-made results JSONL: mean ± std, the papers' layouts, escaped self-contained HTML."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from oblivio.experiments.report import (
    Table,
    activation_distance_table,
    build_tables,
    fmt_mean_std,
    label_accuracy_by_size_table,
    label_accuracy_table,
    mean_std,
    neutralisation_table,
    saving_point_table,
    summary_table,
    tmu_table1,
    to_html,
    tta_mislabel_table,
    two_stage_accuracy_table,
    write_report,
)
from oblivio.experiments.runner import read_results

# per (class, method): accuracies on test / forget over seeds 0, 1, 2
ACC = {
    (0, "ft"): ([0.80, 0.82, 0.84], [0.95, 0.90, 1.00]),
    (0, "tmu"): ([0.85, 0.86, 0.87], [0.70, 0.75, 0.80]),
    (1, "ft"): ([0.70, 0.75, 0.80], [1.00, 1.00, 0.90]),
    (1, "tmu"): ([0.78, 0.80, 0.79], [0.60, 0.65, 0.55]),
}
GOLD = {0: ([0.90, 0.88, 0.86], [0.72, 0.74, 0.76]), 1: ([0.80, 0.82, 0.84], [0.60, 0.62, 0.64])}


def _rows() -> list[dict]:
    rows = []
    for (k, m), (test, forget) in ACC.items():
        for s in range(3):
            gt, gf = GOLD[k][0][s], GOLD[k][1][s]
            rows.append(
                {
                    "key": f"{k}-{m}-{s}",
                    "status": "ok",
                    "scenario": f"class-subset:{k}:100",
                    "forget_class": k,
                    "forget_class_name": ["zero", "one"][k],
                    "n_forget": 100,
                    "n_retain": 900,
                    "method": m,
                    "method_name": m,
                    "hparams": {},
                    "seeds": {"train": s, "gold": s, "request": s, "unlearn": 10_000 + s},
                    "info": {},
                    # as experiments/cell.py writes them: the label ablation beside the metrics, the label
                    # accuracy in them
                    "label_ablation": {"nf": 0.5 + 0.05 * s, "nf+af+cf": 0.7} if m == "tmu" else None,
                    "metrics": {
                        **({"label_accuracy": 0.6 + 0.1 * s} if m == "tmu" else {}),
                        "acc_test": test[s],
                        "acc_forget": forget[s],
                        "acc_retain": 0.99,
                        "gold_acc_test": gt,
                        "gold_acc_forget": gf,
                        "gold_acc_retain": 0.98,
                        "delta_forget": abs(forget[s] - gf),
                        "activation_distance_l2": (0.3 if m == "ft" else 0.1) + 0.01 * s + 0.1 * k,
                        "mia_loss_lr_acc": 0.5,
                        "gold_mia_loss_lr_acc": 0.52,
                    },
                    "cost": {
                        "method_seconds": 2.0 + s,
                        "gold_train_seconds": 20.0,
                        "rte": (2.0 + s) / 20.0,
                        "gold_epochs": 15,
                    },
                    "provenance": {
                        "oblivio_version": "0.1.0",
                        "git_commit": "abc",
                        "host": "h",
                        "backend": "pool",
                        "finished_at": f"2026-01-0{s + 1}T00:00:00+00:00",
                        "config_hash": "c1",
                        "config": {"dataset": "digits", "model": "small-cnn", "recipe": {"name": "tiny"}},
                    },
                }
            )
    return rows


def _ms(values, scale=100.0, digits=1):
    a = np.asarray(values, dtype=float) * scale
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


@pytest.fixture()
def jsonl(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return path


def test_mean_std_helpers():
    assert mean_std([]) == (pytest.approx(float("nan"), nan_ok=True), pytest.approx(float("nan"), nan_ok=True), 0)
    m, s, n = mean_std([0.1, 0.2, 0.6, None, float("nan"), "x"])
    assert (m, n) == (pytest.approx(0.3), 3) and s == pytest.approx(np.std([0.1, 0.2, 0.6], ddof=1))
    assert fmt_mean_std([]) == "n/a" and fmt_mean_std([0.5]) == "50.0"
    assert fmt_mean_std([0.80, 0.82, 0.84]) == _ms([0.80, 0.82, 0.84])


def test_tmu_table1_values(jsonl):
    rows = read_results(jsonl)
    t = tmu_table1(rows)
    assert t.columns == [
        "Forget class",
        "gold reference ACC_test (%)",
        "gold reference ACC_Df (%)",
        "ft ACC_test (%)",
        "ft ACC_Df (%)",
        "tmu ACC_test (%)",
        "tmu ACC_Df (%)",
    ]
    row0 = t.rows[0]
    assert row0[0] == "0 (zero)"
    assert row0[1] == _ms(GOLD[0][0]) and row0[2] == _ms(GOLD[0][1])
    assert row0[3] == _ms(ACC[(0, "ft")][0]) and row0[4] == _ms(ACC[(0, "ft")][1])
    assert row0[5] == _ms(ACC[(0, "tmu")][0]) and row0[6] == _ms(ACC[(0, "tmu")][1])
    # mean row: mean ± std across the per-class means
    mean_row = t.rows[2]
    assert mean_row[0] == "mean"
    per_class = [np.mean(ACC[(k, "ft")][1]) for k in (0, 1)]
    assert mean_row[4] == _ms(per_class)
    # δ row: |ACC_Df(M_u) − ACC_Df(M_g)| per run, averaged per class, then mean ± std across classes
    delta_row = t.rows[3]
    assert delta_row[0] == "δ (points)"
    d = {m: [np.mean(np.abs(np.subtract(ACC[(k, m)][1], GOLD[k][1]))) for k in (0, 1)] for m in ("ft", "tmu")}
    assert delta_row[4] == _ms(d["ft"]) and delta_row[6] == _ms(d["tmu"])
    assert (3, 6) in t.bold  # tmu has the smaller δ
    md = t.to_markdown()
    assert "**" + _ms(d["tmu"]) + "**" in md and md.count("\n") == len(t.rows) + 1


def test_activation_distance_and_summary(jsonl):
    rows = read_results(jsonl)
    t = activation_distance_table(rows)
    assert t.columns == ["Forget class", "ft", "tmu"]
    assert t.rows[0][1] == _ms([0.30, 0.31, 0.32], scale=1, digits=3)
    assert (0, 2) in t.bold and (1, 2) in t.bold
    s = summary_table(rows)
    ft = s.rows[0]
    assert ft[0] == "ft" and ft[1] == "6"
    all_ft_forget = ACC[(0, "ft")][1] + ACC[(1, "ft")][1]
    assert ft[s.columns.index("ACC_Df (%)")] == _ms(all_ft_forget)
    assert ft[s.columns.index("RTE (×)")] == _ms([0.1, 0.15, 0.2] * 2, scale=1, digits=3)
    assert "gold reference MIA loss-LR acc (%)" in s.columns  # MIA variants named, gold beside


def test_label_accuracy_tables(jsonl):
    rows = read_results(jsonl)
    t = label_accuracy_table(rows)
    by_fs = {r[0]: r for r in t.rows}
    assert by_fs["tmu (default)"][1] == _ms([0.6, 0.7, 0.8] * 2) and by_fs["tmu (default)"][2] == "6"
    assert by_fs["NF (refit)"][1] == _ms([0.5, 0.55, 0.6] * 2)
    assert by_fs["NF+AF+CF (refit)"][1] == "70.0 ± 0.0"
    size = label_accuracy_by_size_table(rows)  # one row per (|D_f|, method)
    assert size.columns == ["|D_f|", "Method", "Label accuracy (%)", "δ (points)", "Runs"]
    by_m = {r[1]: r for r in size.rows}
    assert by_m["tmu"][0] == "100" and by_m["tmu"][2] == _ms([0.6, 0.7, 0.8] * 2) and by_m["tmu"][4] == "6"
    assert by_m["ft"][2] == "" and by_m["ft"][3]  # no label accuracy: δ only


def test_two_stage_tables():
    base = {"status": "ok", "hparams": {"mislabel": "min"}, "n_retain": 950, "cost": {"gold_epochs": 15, "rte": 0.5}}
    rows = []
    for s in range(2):
        for ratio, nf in (("random:0.05", 50), ("random:0.01", 10)):
            for mode in ("min", "max"):
                rows.append(
                    {
                        **base,
                        "key": f"{ratio}{mode}{s}",
                        "scenario": ratio,
                        "n_forget": nf,
                        "method": f"two-stage[{mode}]",
                        "hparams": {"mislabel": mode},
                        "seeds": {"train": s, "gold": s, "request": s},
                        "info": {"saving_point": 3 + s, "neutralisation_epochs": nf // 10 + s},
                        "metrics": {
                            "acc_test": 0.8,
                            "acc_retain": 0.9,
                            "acc_forget": 0.1,
                            "gold_acc_test": 0.82,
                            "gold_acc_retain": 0.91,
                            "gold_acc_forget": 0.7,
                            "chance": 0.1,
                            "tta_identity": 0.1 if mode == "min" else 0.3,
                            "tta_hflip": 0.2,
                            "tta_vflip": 0.1,
                            "tta_center_crop": 0.1,
                            "gold_tta_identity": 0.7,
                            "gold_tta_hflip": 0.6,
                            "gold_tta_vflip": 0.3,
                            "gold_tta_center_crop": 0.6,
                        },
                    }
                )
    t2 = two_stage_accuracy_table(rows)
    assert [r[0] for r in t2.rows][:2] == ["random:0.01", "random:0.01"]  # ordered by forget ratio
    assert t2.rows[0][2] == "80.0 ± 0.0" and t2.rows[0][5] == "82.0 ± 0.0"
    t3 = saving_point_table(rows)
    assert t3.rows[0][2] == _ms([3, 4], scale=1) and t3.rows[0][3] == "15 ± 0"
    t4 = tta_mislabel_table(rows)
    modes = {r[1]: r for r in t4.rows}
    assert modes["two-stage[min]"][2] == "min" and modes["two-stage[max]"][3] == "30.0 ± 0.0"
    assert modes["gold reference"][4] == "60.0 ± 0.0" and "Chance = 10.0%." in t4.notes
    t5 = neutralisation_table(rows)
    assert t5.rows[0][1] == f"{100 * 10 / 960:.1f}" and t5.rows[0][3] == _ms([1, 2], scale=1)
    assert [t.key for t in build_tables(rows)] == [
        "two-stage-table2",
        "two-stage-table3",
        "two-stage-table4",
        "two-stage-table5",
        "summary",
    ]


def test_readers_read_only_the_declared_keys():
    """The two-stage tables read the keys TwoStageInfo declares and the hyper-parameter ``mislabel``; TMU's label
    accuracy is read from ``metrics`` and ``label_ablation`` (where experiments/cell.py writes them). Other spellings,
    which no writer writes, are not read."""
    from oblivio.methods.two_stage import TwoStageInfo

    assert {"saving_point", "neutralisation_epochs", "forget_acc_neutralised"} <= set(TwoStageInfo.__annotations__)
    row = {
        "status": "ok",
        "key": "k",
        "scenario": "random:0.05",
        "n_forget": 50,
        "n_retain": 950,
        "method": "two-stage",
        "hparams": {"mislabel_mode": "max"},
        "seeds": {"train": 0, "gold": 0, "request": 0},
        "info": {
            "saving_point_epoch": 3,
            "neutralization_epochs": 2,
            "forget_acc_neutralized": 0.1,
            "label_accuracy": 0.9,
            "ablation": {"nf": 0.8},
        },
        "metrics": {"acc_forget": 0.1, "tta_identity": 0.1},
    }
    assert not saving_point_table([row]) and not neutralisation_table([row])
    assert tta_mislabel_table([row]).rows[0][2] == ""  # no "mislabel" hyper-parameter
    assert not label_accuracy_table([row])
    good = {
        **row,
        "hparams": {"mislabel": "max"},
        "info": {"saving_point": 3, "neutralisation_epochs": 2, "forget_acc_neutralised": 0.1},
    }
    assert saving_point_table([good]).rows[0][2] == "3.0"
    assert neutralisation_table([good]).rows[0][3:5] == ["2.0", "10.0"]
    assert tta_mislabel_table([good]).rows[0][2] == "max"


def test_the_report_does_not_import_the_runner():
    """Reading rows needs no runner: the report's modules import neither the forget-quality benchmark nor the
    runner (the package __init__ may, for its own facade)."""
    import ast
    from pathlib import Path

    import oblivio.experiments as pkg

    root = Path(pkg.__file__).parent
    for name in ("report", "table", "tmu_tables", "two_stage_tables", "summary_tables", "forget_quality_rows", "plots"):
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"forget_quality_run", "runner", "backends", "cell", "bench"}, name


def test_html_is_self_contained_and_escaped(jsonl, tmp_path):
    rows = read_results(jsonl)
    for r in rows:
        r["method"] = r["method"].replace("ft", "<script>alert('x')</script>|ft")
    files = write_report(rows, tmp_path / "out", title="Bench <i>&</i>", intro=["cmd --x '<y>'"])
    page = files.html.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Bench &lt;i&gt;&amp;&lt;/i&gt;" in page and "&lt;y&gt;" in page
    assert "<style>" in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page
    pytest.importorskip("matplotlib")
    assert page.count('src="data:image/png;base64,') >= 2
    md = files.markdown.read_text()
    assert "\\|ft" in md  # pipes inside cells do not break the markdown table
    assert "Finished between 2026-01-01T00:00:00+00:00 and 2026-01-03T00:00:00+00:00." in md


def test_table_html_escapes_cells():
    t = Table("k", "t<", ["a&b"], [["<b>x</b>"]], bold={(0, 0)}, notes=["n>"])
    h = to_html([t], title="T")
    assert "<strong>&lt;b&gt;x&lt;/b&gt;</strong>" in h and "a&amp;b" in h and "n&gt;" in h and "t&lt;" in h


def test_error_rows_are_ignored(jsonl):
    rows = read_results(jsonl) + [{"key": "e", "status": "error", "method": "ft", "scenario": "x"}]
    assert [t.key for t in build_tables(rows, keys=["tmu-table1"])] == ["tmu-table1"]
    with pytest.raises(KeyError, match="unknown table"):
        build_tables(rows, keys=["nope"])
