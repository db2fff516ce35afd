"""Backbone feature tap, discriminator, decoder shapes, weight loading (ImageNet file mocked only
by writing a same-shaped torchvision state dict under a temporary TORCH_HOME)."""
from __future__ import annotations

import pytest
import torch
import torchvision

from fer_pi.checkpoint import save_checkpoint
from fer_pi.errors import FerPiError, WeightsNotFoundError
from fer_pi.models import Decoder, Discriminator, build_backbone, load_for_inference
from fer_fixtures import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size", [32, 48, 88, 224])
def test_decoder_output_matches_input_size(size):
    feat = torch.randn(2, 512, (size + 7) // 8, (size + 7) // 8)
    out = Decoder(512, size)(feat)
    assert out.shape == (2, 3, size, size)
    assert 0.0 <= out.min().item() and out.max().item() <= 1.0


def test_decoder_crops_when_size_not_multiple_of_8():
    model = build_backbone("tiny", None)
    _, feat = model(torch.randn(1, 3, 100, 100))
    assert feat.shape[-1] == 13
    assert Decoder(model.feature_channels, 100)(feat).shape == (1, 3, 100, 100)


def test_tiny_backbone_tap_and_discriminator():
    model = build_backbone("tiny", "none", num_classes=5)
    logits, feat = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 5)
    assert feat.shape == (3, model.feature_channels, 4, 4) and model.feature_stride == 8
    d = Discriminator(model.feature_channels)(feat)
    assert d.shape == (3,)


def test_resnet50_tap_is_512x28x28_at_224():
    model = build_backbone("resnet50", None).eval()
    with torch.no_grad():
        logits, feat = model(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 7) and feat.shape == (1, 512, 28, 28)
    assert model.feature_channels == 512
    assert Discriminator(512)(feat).shape == (1,)


def test_imagenet_weights_missing_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as exc:
        build_backbone("resnet18", "imagenet")
    msg = str(exc.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg
    assert "--weights none" in msg


def test_imagenet_weights_load_from_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)  # stands in for the ImageNet file
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(reference.state_dict(), folder / "resnet18-f37072fd.pth")
    model = build_backbone("resnet18", "imagenet", num_classes=7)
    assert torch.equal(model.layer2[0].conv1.weight, reference.layer2[0].conv1.weight)
    assert model.fc.out_features == 7


def test_saved_checkpoint_loads_as_weights(tmp_path):
    src = build_backbone("tiny", None)
    path = tmp_path / "run" / "student.pt"
    save_checkpoint(path, {"config": {"arch": "tiny", "num_classes": 7}, "student": src.state_dict()})
    model = build_backbone("tiny", str(path))
    for (k, a), b in zip(src.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    # a plain state dict with another class count: fc re-initialised, the rest loaded
    torch.save(src.state_dict(), tmp_path / "plain.pth")
    other = build_backbone("tiny", str(tmp_path / "plain.pth"), num_classes=3)
    assert other.fc.out_features == 3
    assert torch.equal(other.conv1.weight, src.conv1.weight)


def test_wrong_weights_raise_clear_errors(tmp_path):
    torch.save(build_backbone("tiny", None).state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(FerPiError, match="do not fit arch 'resnet18'"):
        build_backbone("resnet18", str(tmp_path / "tiny.pth"))
    with pytest.raises(FerPiError, match="not found"):
        build_backbone("tiny", str(tmp_path / "nope.pth"))
    with pytest.raises(FerPiError, match="arch"):
        build_backbone("vgg16", None)


def test_load_for_inference(tmp_path):
    src = build_backbone("tiny", None)
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"config": {"arch": "tiny", "num_classes": 7}, "student": src.state_dict()})
    model, config = load_for_inference(path)
    assert not model.training and config["arch"] == "tiny"
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x)[0], src.eval()(x)[0])
    with pytest.raises(FerPiError, match="teacher"):
        load_for_inference(path, which="teacher")
