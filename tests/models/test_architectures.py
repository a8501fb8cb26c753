"""Architecture-specific checks: structure against the papers, knob validation, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oblivio.models import create_model
from oblivio.models.allcnn import AllCNN
from oblivio.models.resnet import BasicBlock, ResNet
from oblivio.models.vit import ViT


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- ResNet ---------------------------------------------------------------------------------------------------


def test_resnet18_matches_the_cifar_reference_size():
    # The CIFAR ResNet-18 (3x3 stem, no max-pool, projection shortcuts) with 10 classes has 11,173,962 parameters.
    model = create_model("resnet18", num_classes=10, in_channels=3, image_size=(32, 32))
    assert n_params(model) == 11_173_962
    stem = model.body[0]
    assert isinstance(stem, nn.Conv2d) and stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 8
    assert model.feature_dim == 512


@pytest.mark.parametrize(
    ("name", "blocks", "widths"),
    [
        ("resnet18-narrow", 8, [16, 16, 32, 32, 64, 64, 128, 128]),
        ("resnet10", 4, [64, 128, 256, 512]),
        ("resnet8-narrow", 3, [16, 32, 64]),
    ],
)
def test_resnet_variants(name, blocks, widths):
    model = create_model(name, num_classes=10, in_channels=1, image_size=(28, 28))
    found = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(found) == blocks
    assert [b.conv2.out_channels for b in found] == widths
    assert model.feature_dim == widths[-1]


def test_resnet_stages_halve_the_resolution():
    model = ResNet(num_classes=3, in_channels=1, image_size=(32, 32), width=4, blocks=(1, 1, 1))
    sizes = []
    hooks = [
        b.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
        for b in model.modules()
        if isinstance(b, BasicBlock)
    ]
    model(torch.rand(1, 1, 32, 32))
    for h in hooks:
        h.remove()
    assert sizes == [32, 16, 8]


def test_resnet_knobs_are_validated():
    with pytest.raises(ValueError, match="blocks"):
        ResNet(num_classes=10, in_channels=3, image_size=(32, 32), blocks=())
    with pytest.raises(ValueError, match="width"):
        ResNet(num_classes=10, in_channels=3, image_size=(32, 32), width=0)


def test_resnet_zero_init_residual():
    model = ResNet(num_classes=3, in_channels=1, image_size=(8, 8), width=4, blocks=(1, 1), zero_init_residual=True)
    assert all(torch.all(b.bn2.weight == 0) for b in model.modules() if isinstance(b, BasicBlock))


# --- AllCNN ---------------------------------------------------------------------------------------------------


def test_allcnn_layout_follows_the_paper():
    model = create_model("allcnn", num_classes=10, in_channels=3, image_size=(32, 32))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # Nine convolutions in All-CNN-C; the last (1x1 to num_classes) is our linear head.
    assert [c.out_channels for c in convs] == [96, 96, 96, 192, 192, 192, 192, 192]
    assert [c.stride[0] for c in convs] == [1, 1, 2, 1, 1, 2, 1, 1]
    assert [c.kernel_size[0] for c in convs] == [3, 3, 3, 3, 3, 3, 3, 1]
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    assert model.feature_dim == 192 and model.head.in_features == 192
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 8


def test_allcnn_without_batchnorm_has_conv_biases_and_dropout_is_optional():
    plain = AllCNN(num_classes=10, in_channels=3, image_size=(32, 32), width=4, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    dropped = AllCNN(num_classes=10, in_channels=3, image_size=(32, 32), width=4, dropout=0.5)
    assert sum(isinstance(m, nn.Dropout) for m in dropped.modules()) == 2
    with pytest.raises(ValueError, match="dropout"):
        AllCNN(num_classes=10, in_channels=3, image_size=(32, 32), dropout=1.0)


# --- ViT ------------------------------------------------------------------------------------------------------


def test_vit_registered_sizes():
    small = create_model("vit-small", num_classes=10, in_channels=3, image_size=(32, 32))
    tiny = create_model("vit-tiny", num_classes=10, in_channels=3, image_size=(32, 32))
    assert (small.feature_dim, len(small.body.blocks), small.body.blocks[0].attn.heads) == (192, 6, 3)
    assert (tiny.feature_dim, len(tiny.body.blocks), tiny.body.blocks[0].attn.heads) == (64, 2, 2)
    assert small.body.pos_embed.shape == (1, 8 * 8 + 1, 192)  # 64 patches of 4x4 plus the class token


def test_vit_rejects_a_patch_size_that_does_not_divide_the_image():
    with pytest.raises(ValueError, match=r"patch_size=4 does not divide the 30x30 image.*e\.g\. patch_size=5"):
        create_model("vit-tiny", num_classes=10, in_channels=1, image_size=(30, 30))
    with pytest.raises(ValueError, match=r"patch_size=3 does not divide the 8x8 image.*patch_size=4"):
        create_model("vit-tiny", num_classes=10, in_channels=1, image_size=(8, 8), patch_size=3)


@pytest.mark.parametrize("patch_size", [2, 4])
def test_vit_small_images(patch_size):
    model = ViT(num_classes=3, in_channels=1, image_size=(8, 8), patch_size=patch_size, dim=16, depth=1, heads=2)
    assert model.body.pos_embed.shape[1] == (8 // patch_size) ** 2 + 1
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 3)


def test_vit_features_are_the_normalised_class_token():
    model = ViT(num_classes=3, in_channels=1, image_size=(8, 8), patch_size=4, dim=16, depth=1, heads=2).eval()
    tokens = []
    model.body.blocks.register_forward_hook(lambda _m, _i, out: tokens.append(out))
    x = torch.rand(5, 1, 8, 8)
    feats = model.features(x)
    assert tokens[0].shape == (5, 1 + 4, 16)  # class token + 2x2 patches
    expected = nn.functional.layer_norm(tokens[0][:, 0], (16,), model.body.norm.weight, model.body.norm.bias)
    torch.testing.assert_close(feats, expected)
    torch.testing.assert_close(model(x), model.head(expected))


def test_vit_rejects_other_image_sizes_at_run_time():
    model = ViT(num_classes=3, in_channels=1, image_size=(8, 8), patch_size=4, dim=16, depth=1, heads=2)
    with pytest.raises(ValueError, match="built for 8x8 images"):
        model(torch.rand(1, 1, 16, 16))


def test_vit_knobs_are_validated():
    with pytest.raises(ValueError, match="divisible by heads"):
        ViT(num_classes=3, in_channels=1, image_size=(8, 8), dim=10, heads=3)
    with pytest.raises(ValueError, match="depth"):
        ViT(num_classes=3, in_channels=1, image_size=(8, 8), depth=0)


def test_vit_attention_matches_a_per_head_reference():
    # Independent check of the fused attention: softmax(q k^T / sqrt(d)) v computed head by head.
    torch.manual_seed(0)
    model = ViT(num_classes=3, in_channels=1, image_size=(8, 8), patch_size=4, dim=8, depth=1, heads=2).eval()
    attn = model.body.blocks[0].attn
    x = torch.randn(2, 5, 8)
    q, k, v = attn.qkv(x).split(8, dim=-1)
    heads = []
    for h in range(2):
        s = slice(4 * h, 4 * h + 4)
        weights = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / 2.0, dim=-1)
        heads.append(weights @ v[..., s])
    expected = attn.proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(attn(x), expected)
