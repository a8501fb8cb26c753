"""Readable output: terminal tables fit 120 columns, HTML tables scroll inside a container, the two gold notions
have distinct names, every command shows accuracies in percent."""

from __future__ import annotations

import re

from oblivio.cli.common import format_table, is_percent_metric, metric_rows
from oblivio.experiments.report import GOLD_REFERENCE, GOLD_SEED, Table, build_tables, to_html

WIDE = Table(
    "wide",
    "A wide table",
    ["Method"] + [f"column number {i}" for i in range(17)],
    [["finetune"] + [f"{i}.0 ± 0.1" for i in range(17)], ["tmu"] + [f"{i}.5 ± 0.2" for i in range(17)]],
)


def test_text_tables_fit_120_columns_and_keep_every_cell():
    text = WIDE.to_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    # every cell is still there, and each block repeats the key column
    for i in range(17):
        assert f"column number {i}" in text and f"{i}.5 ± 0.2" in text
    headers = [line for line in lines if line.startswith("Method")]
    assert len(headers) >= 2 and text.count("finetune") == len(headers)
    assert len(WIDE.to_text(width=None).splitlines()[1]) > 120  # the whole table on one line when asked


def test_cli_format_table_blocks():
    rows = [{"model": "m", **{f"metric_{i}": 10.0 * i for i in range(20)}}]
    text = format_table(rows, list(rows[0]))
    assert max(map(len, text.splitlines())) <= 120 and "190.00" in text


def test_html_tables_scroll_in_a_container():
    page = to_html([WIDE], title="t")
    assert re.search(r'<div class="table-wrap"><table>.*?</table></div>', page, re.S)
    assert re.search(r"\.table-wrap\{[^}]*overflow-x:auto", page)


def _row(method, scenario_seed):
    return {
        "status": "ok",
        "method": method,
        "forget_class": 0,
        "scenario": "class-subset:0:10",
        "seeds": {"train": scenario_seed, "gold": scenario_seed, "request": scenario_seed},
        "metrics": {
            "acc_test": 0.9,
            "acc_forget": 0.8,
            "gold_acc_test": 0.91,
            "gold_acc_forget": 0.7,
            "delta_forget": 0.1,
            "activation_distance_l2": 0.2,
            "mia_loss_lr_acc": 0.5,
            "gold_mia_loss_lr_acc": 0.5,
        },
    }


def test_two_gold_notions_have_distinct_names_everywhere():
    rows = [_row("finetune", 0), _row("gold", 0)]
    tables = build_tables(rows, keys=["tmu-table1", "summary"])
    for t in tables:
        names = list(t.columns) + [c for r in t.rows for c in r] + list(t.notes)
        assert "gold" not in t.columns and "gold" not in [c for r in t.rows for c in r]
        assert not any(re.match(r"(?i)gold(?! reference| \(2nd seed\))", str(c)) for c in t.columns), t.columns
        assert any(GOLD_SEED in str(n) for n in names)
    t1, summary = tables
    assert t1.columns[1:3] == [f"{GOLD_REFERENCE} ACC_test (%)", f"{GOLD_REFERENCE} ACC_Df (%)"]
    assert f"{GOLD_SEED} ACC_Df (%)" in t1.columns
    assert [r[0] for r in summary.rows] == ["finetune", GOLD_SEED]
    assert f"{GOLD_REFERENCE} MIA loss-LR acc (%)" in summary.columns


def test_one_unit_convention_percent():
    metrics = {
        "acc_forget": 0.8125,
        "gold_acc_forget": 0.75,
        "delta_forget": 0.0625,
        "mia_loss_lr_auc": 0.61234,
        "activation_distance_l2": 0.123456,
        "sample_agreement": 0.9,
    }
    rows = {r["metric"]: r for r in metric_rows(metrics)}
    assert rows["acc_forget (%)"]["model"] == "81.25" and rows["acc_forget (%)"]["gold reference"] == "75.00"
    assert rows["delta_forget (points)"]["model"] == "6.25" and rows["sample_agreement (%)"]["model"] == "90.00"
    assert rows["mia_loss_lr_auc"]["model"] == "0.6123" and rows["activation_distance_l2"]["model"] == "0.1235"
    assert is_percent_metric("gold_acc_test") and not is_percent_metric("js_divergence")


def test_figure_legends_name_the_second_gold_model(monkeypatch):
    from oblivio.experiments import plots, report

    seen = {}
    monkeypatch.setattr(
        plots, "delta_by_class", lambda rows: seen.setdefault("methods", [r["method"] for r in rows]) and b"png"
    )
    figs = report.build_figures([_row("finetune", 0), _row("gold", 0)], keys=["tmu-table1"])
    assert seen["methods"] == ["finetune", GOLD_SEED] and len(figs) == 1
