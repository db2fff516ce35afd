"""Networks: ResNet backbone with a layer2 feature tap, feature discriminator, image decoder."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import FerPiError
from .backbone import (IMAGENET_FILES, Backbone, build_backbone, imagenet_weight_path,
                       load_backbone_weights)
from .decoder import Decoder
from .discriminator import Discriminator

__all__ = ["Backbone", "Decoder", "Discriminator", "IMAGENET_FILES", "build_backbone",
           "imagenet_weight_path", "load_backbone_weights", "load_for_inference"]


def load_for_inference(path: str | Path, which: str = "student",
                       device: str | torch.device = "cpu") -> tuple[Backbone, dict]:
    """Build the checkpoint's architecture and load its ``which`` weights, in eval mode.

    Args:
        path: a fer_pi checkpoint (``best.pt``, ``last.pt``, ``student.pt``, ``teacher.pt``).
        which: ``"student"`` (the occluded-face classifier) or ``"teacher"``.
        device: where to put the model.

    Returns:
        ``(model, config_dict)``.

    Raises:
        FerPiError: missing/corrupt file, or no ``which`` weights inside.
    """
    from ..checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    if which not in payload:
        have = [k for k in ("student", "teacher") if k in payload]
        raise FerPiError(f"{path}: checkpoint holds no {which!r} weights (it has {', '.join(have)})")
    config = dict(payload.get("config") or {})
    model = build_backbone(config.get("arch", "resnet50"), weights=None,
                           num_classes=int(config.get("num_classes", 7)))
    try:
        model.load_state_dict(payload[which])
    except RuntimeError as exc:
        raise FerPiError(f"{path}: {which} weights do not fit arch {model.arch!r} ({exc})") from None
    return model.to(device).eval(), config
