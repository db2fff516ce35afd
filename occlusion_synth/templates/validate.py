"""Checking a template folder: every problem with the file and the reason, instead of the first error."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TemplateError
from .alpha import soft_edge_width
from .library import (CATEGORIES, IMAGE_SUFFIXES, NOSE_TIP_ANCHORS, REQUIRED_MASK_ANCHORS, PathLike,
                      _iter_template_files, read_sidecar, read_template)

# less than this fraction of partially transparent pixels in the footprint = hard (jagged) edge
MIN_SOFT_EDGE = 0.002
# how far (pixels) a mask landmark anchor may lie from the visible mask
MASK_ANCHOR_SLACK = 12.0


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`validate_templates`.

    Attributes:
        path: the file concerned.
        reason: what is wrong, in words.
        severity: ``"error"`` (the template cannot be loaded or used) or ``"warning"``.
    """

    path: Path
    reason: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.reason}"


def _strip_path(message: str, path: Path) -> str:
    for p in (str(path), str(path.with_suffix(".json"))):
        prefix = p + ": "
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _check_loaded(tpl, path: Path) -> list[Problem]:
    problems = []
    alpha = tpl.alpha
    if soft_edge_width(alpha) < MIN_SOFT_EDGE:
        problems.append(Problem(path, "alpha has no soft edge (binary alpha pastes with jagged "
                                      "edges; feather or anti-alias it)", "warning"))
    if tpl.category == "mask":
        keys = set(tpl.anchors)
        missing = [k for k in REQUIRED_MASK_ANCHORS if k not in keys]
        if not any(k in keys for k in NOSE_TIP_ANCHORS):
            missing.append("lm30|lm33")
        json_path = path.with_suffix(".json")
        if missing:
            problems.append(Problem(path, f"mask template lacks landmark anchors {missing}"))
        elif not json_path.is_file() or "anchors" not in read_sidecar(json_path):
            problems.append(Problem(path, "mask without sidecar anchors: landmark anchors were "
                                          "guessed from the alpha box", "warning"))
        problems += _check_mask_anchors(tpl, path)
    return problems


def _check_mask_anchors(tpl, path: Path) -> list[Problem]:
    import cv2

    visible = (tpl.alpha > 0).astype(np.uint8)
    # distance from every pixel to the visible footprint
    dist = cv2.distanceTransform(1 - visible, cv2.DIST_L2, 5)
    h, w = visible.shape
    far = []
    for key, (x, y) in sorted(tpl.anchors.items()):
        if not key.startswith("lm"):
            continue
        xi, yi = min(int(round(x)), w - 1), min(int(round(y)), h - 1)
        if dist[yi, xi] > MASK_ANCHOR_SLACK:
            far.append(f"{key} ({dist[yi, xi]:.0f} px)")
    if far:
        return [Problem(path, f"mask anchors far from the visible mask: {', '.join(far)}")]
    return []


def validate_templates(path: PathLike) -> list[Problem]:
    """Check every template under ``path`` (a library root, a category folder or one file).

    Reports, per file: unreadable image, no alpha channel and no mask file, empty alpha, size under
    16 px, bad JSON, unknown JSON keys, bad ``scale_range``, bad anchors, unknown category, mask
    templates without the landmark anchors (errors); alpha without any soft edge, guessed mask
    anchors, stray files (warnings).

    Returns:
        The problems found, in file order; empty when everything is fine.

    Raises:
        TemplateError: ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise TemplateError(f"{root}: template path not found")
    problems: list[Problem] = []
    n = 0
    for file, folder_cat in _iter_template_files(root):
        if root.is_dir() and file.parent == root and folder_cat not in CATEGORIES \
                and not file.with_suffix(".json").is_file():
            problems.append(Problem(file, f"image outside any category folder "
                                          f"({', '.join(CATEGORIES)}); ignored by the loader", "warning"))
            continue
        n += 1
        try:
            tpl = read_template(file, folder_cat)
        except TemplateError as exc:
            problems.append(Problem(file, _strip_path(str(exc), file)))
            continue
        problems += _check_loaded(tpl, file)
    if root.is_dir():
        # sidecars without an image are almost always a renamed or deleted template
        for json_path in sorted(root.rglob("*.json")):
            if not any(json_path.with_suffix(s).is_file() for s in IMAGE_SUFFIXES):
                problems.append(Problem(json_path, "sidecar JSON without an image", "warning"))
    if n == 0:
        problems.append(Problem(root, "no template images found"))
    return problems
