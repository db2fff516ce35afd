"""ResNet backbones with a feature tap at the output of ``layer2`` (Section 5.1 of the paper).

The tap is the "hidden feature space corresponding to the feature map with a size of
28 x 28 x 512" on which the discriminator and the decoder are built: ResNet-50 ``layer2`` output,
stride 8, 512 channels (28 x 28 at 224 px, 11 x 11 at 88 px, 6 x 6 at 48 px).

:class:`Backbone` keeps torchvision's module names (``conv1``, ``layer1`` ... ``fc``), so torchvision
state dicts load into it unchanged.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50
from torchvision.models.resnet import BasicBlock

from ..errors import FerPiError, WeightsNotFoundError

#: torchvision ImageNet weight files accepted from the local hub cache, per architecture.
IMAGENET_FILES: dict[str, tuple[str, ...]] = {
    "resnet50": ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth"),
    "resnet34": ("resnet34-b627a593.pth",),
    "resnet18": ("resnet18-f37072fd.pth",),
}
_BUILDERS = {"resnet50": resnet50, "resnet34": resnet34, "resnet18": resnet18}


class Backbone(nn.Module):
    """A ResNet classifier that also returns its stride-8 ``layer2`` feature map.

    Attributes:
        arch: architecture name.
        feature_channels: channels of the tapped map (512 for ResNet-50, 128 for 18/34, 16 tiny).
        feature_stride: 8 (the tap is ``ceil(H / 8) x ceil(W / 8)``).
        num_classes: size of the final linear layer.
    """

    feature_stride = 8

    def __init__(self, arch: str, net: nn.Module, feature_channels: int, num_classes: int):
        super().__init__()
        self.arch = arch
        self.feature_channels = feature_channels
        self.num_classes = num_classes
        # Same attribute names as torchvision.models.ResNet: state dicts are interchangeable.
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                     "avgpool", "fc"):
            setattr(self, name, getattr(net, name))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classify a batch.

        Args:
            x: ``(B, 3, H, W) float32`` ImageNet-normalised images.

        Returns:
            ``(logits, features)``: ``(B, num_classes)`` and the ``layer2`` map
            ``(B, feature_channels, ceil(H/8), ceil(W/8))``.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = self.layer2(self.layer1(x))
        x = self.avgpool(self.layer4(self.layer3(features)))
        return self.fc(torch.flatten(x, 1)), features


class _TinyResNet(nn.Module):
    """A ResNet-shaped test net (BasicBlocks, widths 8/16/32/32) with torchvision's module names."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(8, 8, 1)
        self.layer2 = _stage(8, 16, 2)
        self.layer3 = _stage(16, 32, 2)
        self.layer4 = _stage(32, 32, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(BasicBlock(cin, cout, stride=stride, downsample=down))


def imagenet_weight_path(arch: str) -> tuple[Path, Path | None]:
    """Where torchvision's ImageNet file for ``arch`` must be (first accepted name) and where it is."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    names = IMAGENET_FILES[arch]
    for name in names:
        if (folder / name).is_file():
            return folder / names[0], folder / name
    return folder / names[0], None


def build_backbone(arch: str = "resnet50", weights: str | Path | None = "imagenet",
                   num_classes: int = 7) -> Backbone:
    """Build a :class:`Backbone`.

    Args:
        arch: ``resnet50`` | ``resnet34`` | ``resnet18`` | ``tiny`` (CPU tests).
        weights: ``"imagenet"`` (torchvision file from the local torch hub cache; never
            downloaded), ``None``/``"none"`` (random init), or a path to a state dict or a fer_pi
            checkpoint (its student weights, else teacher).
        num_classes: output classes (the fc layer is replaced; 7 basic expressions).

    Raises:
        WeightsNotFoundError: ImageNet weights requested but not in the local cache.
        FerPiError: unknown arch, unreadable or incompatible weight file.
    """
    if arch == "tiny":
        model = Backbone("tiny", _TinyResNet(num_classes), 16, num_classes)
    elif arch in _BUILDERS:
        net = _BUILDERS[arch](weights=None)
        channels = 512 if arch == "resnet50" else 128
        if weights == "imagenet":
            expected, found = imagenet_weight_path(arch)
            if found is None:
                raise WeightsNotFoundError(
                    f"--weights imagenet: ImageNet weights for {arch} not found; put torchvision's "
                    f"{expected.name} (from https://download.pytorch.org/models/{expected.name}) at "
                    f"{expected} (TORCH_HOME sets the folder), or train from scratch with --weights none")
            state = _torch_load(found)
            net.load_state_dict(state)
        net.fc = nn.Linear(net.fc.in_features, num_classes)
        model = Backbone(arch, net, channels, num_classes)
    else:
        raise FerPiError(f"--arch {arch!r}: must be one of resnet50, resnet34, resnet18, tiny")
    if weights == "imagenet" and arch == "tiny":
        raise FerPiError("--weights imagenet: there are no ImageNet weights for arch 'tiny'; use none")
    if weights not in (None, "none", "imagenet", ""):
        load_backbone_weights(model, weights)
    return model


def _torch_load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FerPiError(f"{path}: weight file not found") from None
    except Exception as exc:  # corrupt/pickled-object files: say which file
        raise FerPiError(f"{path}: not a readable weight file ({type(exc).__name__}: {exc})") from None


def load_backbone_weights(model: Backbone, path: str | Path, which: str | None = None) -> None:
    """Load a state dict or a fer_pi checkpoint into ``model`` (strict on all non-fc keys).

    The fc layer is re-initialised (left as built) when the file's class count differs.

    Raises:
        FerPiError: missing file, no usable weights inside, or keys/shapes that do not match.
    """
    p = Path(path)
    if not p.is_file():
        raise FerPiError(f"--weights {p}: file not found")
    state = _torch_load(p)
    if isinstance(state, dict) and ("student" in state or "teacher" in state):
        key = which or ("student" if "student" in state else "teacher")
        if key not in state:
            raise FerPiError(f"{p}: checkpoint holds no {key!r} weights (has {sorted(state)})")
        state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FerPiError(f"{p}: not a state dict or fer_pi checkpoint")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    fc_keys = {"fc.weight", "fc.bias"}
    if any(k in state and state[k].shape != own[k].shape for k in fc_keys):
        state = {k: v for k, v in state.items() if k not in fc_keys}
    missing = sorted(set(own) - set(state) - fc_keys)
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise FerPiError(f"{p}: weights do not fit arch {model.arch!r} "
                         f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                         f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})")
    wrong = [k for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        raise FerPiError(f"{p}: weight shapes do not fit arch {model.arch!r} (e.g. {wrong[0]}: "
                         f"{tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)})")
    model.load_state_dict(state, strict=False)
