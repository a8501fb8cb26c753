"""Model adapters on look-alike modules written here (timm-, torchvision- and plain layouts; no timm/torchvision).

Oracle: each test computes the expected penultimate activations by hand from the module's own layers, sharing
nothing with oblivio.models.adapters.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oblivio.data import ImageDataset
from oblivio.methods import UnlearningError, create_method
from oblivio.models import create_model
from oblivio.models.adapters import ClassifierAdapter, ContractError, as_classifier, check_classifier, unwrap

K = 3


class TimmLike(nn.Module):
    """timm layout: forward_features -> [B, C, H, W]; forward_head(x, pre_logits) pools, then the classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 3, padding=1)
        self.fc = nn.Linear(6, K)

    def forward_features(self, x):
        return F.relu(self.stem(x))

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def get_classifier(self):
        return self.fc


class VggLike(nn.Module):
    """torchvision VGG / MobileNet layout: a conv ``.features`` trunk, pooling, a ``.classifier`` Sequential."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 7, 3, padding=1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(7, K))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class ResNetLike(nn.Module):
    """torchvision ResNet layout: named layers and an ``fc`` head, with an explicit forward."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, K)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(F.relu(self.bn1(self.conv1(x)))), 1))


def plain():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 9), nn.Tanh(), nn.Linear(9, K))


class LogSoftmaxNet(nn.Module):
    """Something runs after the last Linear: the hook cannot name the penultimate layer."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, K)

    def forward(self, x):
        return F.log_softmax(self.lin(x.flatten(1)), 1)


X = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _eval(m):
    return m.eval()


def test_timm_style_uses_pre_logits():
    m = _eval(TimmLike())
    clf = as_classifier(m)
    assert clf.style == "timm"
    expected = F.relu(m.stem(X)).mean((2, 3))
    torch.testing.assert_close(clf.features(X), expected)
    assert clf.head is m.fc
    torch.testing.assert_close(clf.head(clf.features(X)), m(X))


def test_torchvision_trunk_is_pooled_to_2d():
    m = _eval(VggLike())
    clf = as_classifier(m)
    assert clf.style == "torchvision-trunk"
    z = clf.features(X)
    assert z.shape == (5, 7)
    torch.testing.assert_close(z, m.features(X).mean((2, 3)))
    assert clf.head is m.classifier[1]
    torch.testing.assert_close(clf.head(z), m(X))


def test_resnet_fc_input_by_hook():
    m = _eval(ResNetLike())
    clf = as_classifier(m)
    expected = F.relu(m.bn1(m.conv1(X))).mean((2, 3))
    torch.testing.assert_close(clf.features(X), expected)
    assert clf.head is m.fc
    assert not m.fc._forward_hooks  # the hook lives for one call only


def test_plain_module_last_linear_found_by_execution_order():
    m = _eval(plain())
    clf = as_classifier(m)
    expected = torch.tanh(m[3](F.relu(m[1](X.flatten(1)))))
    torch.testing.assert_close(clf.features(X), expected)
    assert clf.head is m[5]


def test_explicit_features_and_head():
    m = _eval(ResNetLike())
    by_fn = as_classifier(m, features=lambda model, x: model.bn1(model.conv1(x)).amax((2, 3)))
    torch.testing.assert_close(by_fn.features(X), m.bn1(m.conv1(X)).amax((2, 3)))
    by_name = as_classifier(m, features="conv1")
    assert by_name.features(X).shape == (5, 4 * 8 * 8)  # a 4-d output is flattened
    by_head = as_classifier(plain().eval(), head="3")
    assert by_head.features(X).shape == (5, 10)
    with pytest.raises(ContractError, match="no sub-module or method 'nope'"):
        as_classifier(m, features="nope")
    with pytest.raises(ContractError, match="no sub-module 'nope'"):
        as_classifier(m, head="nope")


def test_oblivio_classifier_is_returned_unchanged():
    m = create_model("small-cnn", num_classes=K, in_channels=1, image_size=(8, 8))
    assert as_classifier(m) is m


def test_adapter_survives_deepcopy_and_keeps_weights_shared():
    m = _eval(plain())
    clf = as_classifier(m)
    clf.features(X)
    twin = copy.deepcopy(clf)
    with torch.no_grad():
        twin.model[5].weight.add_(1.0)
    assert not torch.equal(twin(X), clf(X))  # the copy has its own weights ...
    torch.testing.assert_close(twin.features(X), clf.features(X))  # ... and the head's input is unchanged
    assert unwrap(clf) is m and unwrap(m) is m
    assert clf.state_dict().keys() == {f"model.{k}" for k in m.state_dict()}


def test_something_after_the_last_linear_is_refused_with_advice():
    with pytest.raises(ContractError, match="as_classifier"):
        as_classifier(LogSoftmaxNet()).features(X)


def test_contract_check_on_one_batch():
    check_classifier(plain(), X, num_classes=K, needs_features=True)
    with pytest.raises(ContractError, match="3 outputs but the data has 4 classes"):
        check_classifier(plain(), X, num_classes=4)
    with pytest.raises(ContractError, match=r"fails on a batch of shape \(5, 1, 8, 8\)"):
        check_classifier(nn.Linear(3, 3), X, num_classes=3)
    with pytest.raises(ContractError, match="needs penultimate features"):
        check_classifier(LogSoftmaxNet(), X, num_classes=K, needs_features=True)
    check_classifier(LogSoftmaxNet(), X, num_classes=K, needs_features=False)  # logits alone are fine


@pytest.fixture()
def toy_data():
    g = torch.Generator().manual_seed(1)
    ds = ImageDataset(torch.rand(60, 1, 8, 8, generator=g), torch.arange(60) % K, tuple("abc"))
    return ds.subset(range(6)), ds.subset(range(6, 48)), ds.subset(range(48, 60))


def test_tmu_refuses_before_any_training(toy_data, monkeypatch):
    """The contract is checked on one batch: nothing is trained when the model cannot give features."""
    import oblivio.training.loop as loop

    calls = []
    real_fit = loop.fit
    monkeypatch.setattr(loop, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    forget, retain, holdout = toy_data
    with pytest.raises(UnlearningError, match="tmu needs penultimate features.*as_classifier"):
        create_method("tmu")(LogSoftmaxNet(), forget=forget, retain=retain, holdout=holdout, progress=False)
    assert calls == []
    # a method that needs only logits accepts the same model
    out = create_method("finetune", epochs=1)(LogSoftmaxNet(), forget=forget, retain=retain, progress=False)
    assert isinstance(out, LogSoftmaxNet)


TMU_FAST = dict(n_twins=1, twin_epochs=1, cf_epochs=1, epochs=1, predictor_epochs=5)


@pytest.mark.parametrize("factory", [TimmLike, VggLike, ResNetLike, plain], ids=["timm", "vgg", "resnet", "plain"])
def test_tmu_runs_on_every_layout_and_returns_the_users_type(factory, toy_data):
    forget, retain, holdout = toy_data
    torch.manual_seed(0)
    model = factory()
    before = copy.deepcopy(model.state_dict())
    out = create_method("tmu", **TMU_FAST)(model, forget=forget, retain=retain, holdout=holdout, progress=False)
    assert type(out) is type(model) and not isinstance(out, ClassifierAdapter)
    assert out.state_dict().keys() == before.keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
