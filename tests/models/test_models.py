"""Registry-driven tests: every model in ``list_models()`` must honour the :class:`Classifier` contract.

Heavy architectures are exercised at their registered size only by a 32x32, batch-2 shape check; the behavioural
tests run them with the shrinking knobs in ``FAST_KNOBS`` (same depth and structure, fewer channels), so the file
stays fast on one CPU core. A model added to the registry later is tested automatically, at its default size unless
it gets an entry in ``FAST_KNOBS``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oblivio.models import Classifier, create_model, list_models

NUM_CLASSES = 4
SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]

# Extra constructor keywords that shrink a registered model for the behavioural tests.
FAST_KNOBS: dict[str, dict] = {
    "small-cnn": dict(width=8, hidden=32),
    "resnet18": dict(width=8),
    "resnet18-narrow": dict(width=8),
    "resnet10": dict(width=8),
    "resnet8-narrow": dict(width=8),
    "allcnn": dict(width=8),
    "vit-small": dict(dim=48),
    "vit-tiny": {},
}

MODEL_NAMES = list_models()


def build(name: str, shape=(3, 32, 32), *, fast: bool = True, seed: int = 0, **kwargs) -> Classifier:
    """Seeded model for ``shape``; skips the test when the architecture does not support that image size."""
    c, h, w = shape
    knobs = {**(FAST_KNOBS.get(name, {}) if fast else {}), **kwargs}
    torch.manual_seed(seed)
    try:
        return create_model(name, num_classes=NUM_CLASSES, in_channels=c, image_size=(h, w), **knobs)
    except ValueError as exc:
        pytest.skip(f"{name} does not support {c}x{h}x{w} inputs: {exc}")


def images(shape, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, *shape, generator=torch.Generator().manual_seed(seed))


def modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_expected_models_are_registered():
    expected = {
        "small-cnn",
        "resnet18",
        "resnet18-narrow",
        "resnet10",
        "resnet8-narrow",
        "allcnn",
        "vit-small",
        "vit-tiny",
    }
    assert expected <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_size_on_cifar_shape(name):
    model = build(name, (3, 32, 32), fast=False).eval()
    x = images((3, 32, 32), batch=2)
    with torch.no_grad():
        logits, feats = model(x), model.features(x)
    assert isinstance(model, Classifier)
    assert isinstance(model.head, nn.Linear)
    assert logits.shape == (2, NUM_CLASSES)
    assert feats.shape == (2, model.feature_dim)
    assert model.head.in_features == model.feature_dim
    torch.testing.assert_close(model.head(feats), logits)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_and_feature_shapes(name, shape):
    model = build(name, shape).eval()
    x = images(shape, batch=3)
    with torch.no_grad():
        logits, feats = model(x), model.features(x)
    assert logits.shape == (3, NUM_CLASSES)
    assert feats.shape == (3, model.feature_dim)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(model.head(feats), logits)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_gradients_reach_every_parameter(name):
    model = build(name, (1, 8, 8)).train()
    x, y = images((1, 8, 8), batch=4), torch.arange(4) % NUM_CLASSES
    nn.functional.cross_entropy(model(x), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient in {pname}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_sgd_overfits_sixteen_samples(name):
    model = build(name, (1, 8, 8)).train()
    x = images((1, 8, 8), batch=16, seed=2)
    y = torch.arange(16) % NUM_CLASSES
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"{name}: loss went {losses[0]:.3f} -> {losses[-1]:.3f}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_check_input_names_the_mismatch(name):
    model = build(name, (1, 28, 28))
    model.check_input((1, 28, 28), NUM_CLASSES)  # matching data: no error
    with pytest.raises(ValueError, match=r"expects 1 channel\(s\), the data has 3"):
        model.check_input((3, 28, 28))
    with pytest.raises(ValueError, match=r"expects 28x28 images, the data has 32x32"):
        model.check_input((1, 32, 32))
    with pytest.raises(ValueError, match=rf"has {NUM_CLASSES} outputs, the data has 10 classes"):
        model.check_input((1, 28, 28), 10)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_state_dict_round_trip(name):
    source = build(name, (1, 8, 8), seed=0)
    with torch.no_grad():
        source.train()(images((1, 8, 8), batch=8, seed=3))  # move BatchNorm running statistics off their init
    target = build(name, (1, 8, 8), seed=1)
    target.load_state_dict(source.state_dict())
    x = images((1, 8, 8), batch=4)
    with torch.no_grad():
        assert torch.equal(source.eval()(x), target.eval()(x))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_model(name):
    a, b = build(name, (1, 8, 8), seed=7), build(name, (1, 8, 8), seed=7)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb), f"{name}: {na} differs between two seeded builds"
    x = images((1, 8, 8))
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))
    c = build(name, (1, 8, 8), seed=8)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_features_leaves_modes_alone(name, train):
    model = build(name, (1, 8, 8)).train(train)
    before = modes(model)
    with torch.no_grad():
        model.features(images((1, 8, 8)))
        model(images((1, 8, 8)))
    assert modes(model) == before


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_follows_the_dtype_it_is_given(name):
    model = build(name, (1, 8, 8)).double().eval()
    with torch.no_grad():
        out = model(images((1, 8, 8)).double())
    assert out.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_runs_on_cuda(name):
    model = build(name, (3, 32, 32)).cuda().eval()
    with torch.no_grad():
        assert model(images((3, 32, 32)).cuda()).device.type == "cuda"
