"""oblivio.unlearn / evaluate_unlearning / enable_logging: the user's own module and torch data in, a model and a
readable report out.

Oracles: accuracies recomputed here with sklearn.metrics.accuracy_score on the model's argmax; the table's numbers
parsed back from the text.
"""

from __future__ import annotations

import copy
import io
import logging
import re

import pytest
import torch
from sklearn.metrics import accuracy_score
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

import oblivio
from oblivio.data import DatasetError
from oblivio.methods import UnlearningError

K = 3


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, K))


@pytest.fixture(scope="module")
def world():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(90, 1, 8, 8, generator=g)
    y = torch.arange(90) % K
    full = TensorDataset(x, y)
    return {
        "full": full,
        "x": x,
        "y": y,
        "forget": Subset(full, range(0, 9)),
        "retain": Subset(full, range(9, 60)),
        "holdout": Subset(full, range(60, 75)),
        "test": Subset(full, range(75, 90)),
    }


def _acc(model, x, y):
    with torch.no_grad():
        return accuracy_score(y.numpy(), model.eval()(x).argmax(1).numpy())


def test_unlearn_torch_subsets_with_tmu_on_a_plain_module(world):
    net = _net()
    before = copy.deepcopy(net.state_dict())
    new, report = oblivio.unlearn(
        net,
        forget=world["forget"],
        retain=world["retain"],
        holdout=world["holdout"],
        test=world["test"],
        method="tmu",
        n_twins=1,
        twin_epochs=1,
        epochs=1,
        predictor_epochs=5,
        progress=False,
    )
    assert type(new) is nn.Sequential
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the user's model is untouched
    x, y = world["x"], world["y"]
    assert report.before["acc_forget"] == pytest.approx(_acc(net, x[:9], y[:9]))
    assert report.after["acc_forget"] == pytest.approx(_acc(new, x[:9], y[:9]))
    assert report.after["acc_test"] == pytest.approx(_acc(new, x[75:], y[75:]))
    assert report.after["acc_holdout"] == pytest.approx(_acc(new, x[60:75], y[60:75]))
    assert report.sizes == {"forget": 9, "retain": 51, "holdout": 15, "test": 15}
    assert report.method == "tmu" and report.hparams["n_twins"] == 1 and "predicted_easy" in report.info


def test_report_str_is_a_rounded_percent_table(world):
    _, report = oblivio.unlearn(
        _net(), forget=world["forget"], retain=world["retain"], method="finetune", epochs=1, progress=False
    )
    text = str(report)
    lines = text.splitlines()
    assert lines[0].startswith("oblivio.unlearn: finetune (seed 0)")
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if line.startswith("accuracy on forget (%)"))
    b, a = (float(v) for v in row.split()[-2:])
    assert b == pytest.approx(100 * report.before["acc_forget"], abs=0.005)
    assert a == pytest.approx(100 * report.after["acc_forget"], abs=0.005)
    numbers = re.findall(r"\d+\.\d+", "\n".join(lines[1:]))
    assert numbers and all(len(n.split(".")[1]) == 2 for n in numbers)
    assert report.to_dict()["after"] == report.after


def test_same_seed_same_model_and_dataloader_arrays_inputs(world):
    x, y = world["x"], world["y"]
    kw = dict(method="finetune", epochs=2, progress=False, seed=4)
    a, _ = oblivio.unlearn(
        _net(),
        forget=DataLoader(world["forget"], batch_size=4, shuffle=True),
        retain=DataLoader(world["retain"], batch_size=4),
        **kw,
    )
    b, _ = oblivio.unlearn(_net(), forget=(x[:9], y[:9]), retain=(x[9:60].numpy(), y[9:60].numpy()), **kw)
    # the same images in the same order: the same model, whatever the container
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_positional_ids_of_separate_datasets_do_not_collide(world):
    x, y = world["x"], world["y"]
    forget = TensorDataset(x[:9], y[:9])  # both numbered 0..N-1 on their own
    retain = TensorDataset(x[9:60], y[9:60])
    new, report = oblivio.unlearn(_net(), forget=forget, retain=retain, method="finetune", epochs=1, progress=False)
    assert report.sizes["retain"] == 51
    # the same Subset passed as forget and retain is a real overlap and is refused
    with pytest.raises(UnlearningError, match="share 9 sample ids"):
        oblivio.unlearn(_net(), forget=world["forget"], retain=world["forget"], method="finetune", progress=False)


def test_bad_inputs_fail_before_anything_runs(world):
    with pytest.raises(TypeError, match="no hyper-parameter.*valid"):
        oblivio.unlearn(_net(), forget=world["forget"], retain=world["retain"], method="finetune", lr_typo=1)
    with pytest.raises(UnlearningError, match="tmu needs holdout"):
        oblivio.unlearn(_net(), forget=world["forget"], retain=world["retain"], method="tmu")
    with pytest.raises(UnlearningError, match="2 outputs but the data has 3 classes"):
        oblivio.unlearn(
            nn.Sequential(nn.Flatten(), nn.Linear(64, 2)),
            forget=world["forget"],
            retain=world["retain"],
            method="finetune",
            classes=("a", "b", "c"),
        )


def test_evaluate_unlearning_matches_sklearn_and_prints_a_table(world):
    net, gold = _net(), _net()
    with torch.no_grad():
        gold[3].bias.add_(torch.tensor([0.0, 5.0, 0.0]))
    res = oblivio.evaluate_unlearning(
        net, forget=world["forget"], retain=world["retain"], test=world["test"], gold=gold, mia=False
    )
    x, y = world["x"], world["y"]
    assert res["acc_retain"] == pytest.approx(_acc(net, x[9:60], y[9:60]))
    assert res["gold_acc_forget"] == pytest.approx(_acc(gold, x[:9], y[:9]))
    assert res["delta_forget"] == pytest.approx(abs(res["acc_forget"] - res["gold_acc_forget"]))
    text = str(res)
    assert "gold reference" in text.splitlines()[0]
    row = next(line for line in text.splitlines() if line.startswith("accuracy on test (%)"))
    assert float(row.split()[-2]) == pytest.approx(100 * res["acc_test"], abs=0.005)
    with pytest.raises(DatasetError, match="needs test"):
        oblivio.evaluate_unlearning(net, forget=world["forget"], retain=world["retain"], test=None)


def test_enable_logging_shows_progress_lines_once():
    buf = io.StringIO()
    logger = oblivio.enable_logging(level="INFO", stream=buf, fmt="%(name)s|%(message)s")
    try:
        oblivio.enable_logging(level="INFO", stream=buf, fmt="%(name)s|%(message)s")
        logging.getLogger("oblivio.training").info("hello")
        logging.getLogger("oblivio.training").debug("hidden")
        assert buf.getvalue() == "oblivio.training|hello\n"
        assert sum(getattr(h, "_oblivio_enable_logging", False) for h in logger.handlers) == 1
    finally:
        for h in list(logger.handlers):
            if getattr(h, "_oblivio_enable_logging", False):
                logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def test_top_level_names_are_lazy_and_complete():
    import subprocess
    import sys

    code = (
        "import sys, oblivio; assert 'torch' not in sys.modules; "
        "print(sorted(n for n in oblivio.__all__ if n != '__version__'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "unlearn" in out and "evaluate_unlearning" in out and "as_classifier" in out
    assert callable(oblivio.unlearn) and callable(oblivio.as_classifier) and callable(oblivio.as_image_dataset)
