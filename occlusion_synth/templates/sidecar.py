"""Sidecar JSON of a template: parsing and checking (keys, types, scale_range, anchors)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import TemplateError

CATEGORIES: tuple[str, ...] = ("food", "hand", "drink", "mask")
SIDECAR_KEYS = frozenset({"category", "anchors", "scale_range", "licence", "source", "size",
                          "description"})
# accepted spellings -> canonical key
SIDECAR_ALIASES = {"anchor": "anchors", "license": "licence"}


def read_sidecar(json_path: Path) -> dict:
    """Parse and check a sidecar JSON file (keys, types, scale_range, anchors' shape).

    Raises:
        TemplateError: unreadable JSON, unknown keys, or a malformed value (message names the file).
    """
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{json_path}: cannot read sidecar ({exc})") from None
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{json_path}: bad JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise TemplateError(f"{json_path}: bad JSON (top level must be an object)")
    meta = {SIDECAR_ALIASES.get(k, k): v for k, v in meta.items()}
    unknown = sorted(set(meta) - SIDECAR_KEYS)
    if unknown:
        raise TemplateError(f"{json_path}: unknown keys {unknown} (allowed: {sorted(SIDECAR_KEYS)})")
    if "category" in meta and meta["category"] not in CATEGORIES:
        raise TemplateError(f"{json_path}: unknown category {meta['category']!r} "
                            f"(known: {', '.join(CATEGORIES)})")
    if "scale_range" in meta:
        meta["scale_range"] = _check_scale_range(meta["scale_range"], json_path)
    if "anchors" in meta:
        anchors = meta["anchors"]
        if not isinstance(anchors, dict):
            raise TemplateError(f"{json_path}: 'anchors' must be an object of name: [x, y]")
        checked = {}
        for key, pt in anchors.items():
            if (not isinstance(pt, (list, tuple)) or len(pt) != 2
                    or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in pt)):
                raise TemplateError(f"{json_path}: anchor {key!r} must be [x, y] numbers, got {pt!r}")
            checked[str(key)] = (float(pt[0]), float(pt[1]))
        meta["anchors"] = checked
    for key in ("licence", "source"):
        if key in meta and not isinstance(meta[key], str):
            raise TemplateError(f"{json_path}: {key!r} must be a string")
    if "size" in meta:
        size = meta["size"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise TemplateError(f"{json_path}: 'size' must be [width, height] integers, got {size!r}")
    return meta


def _check_scale_range(value, where: Path) -> tuple[float, float]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value))
    if not ok:
        raise TemplateError(f"{where}: bad scale_range {value!r} (want [min, max] numbers)")
    lo, hi = float(value[0]), float(value[1])
    if not (0.0 < lo <= hi <= 10.0):
        raise TemplateError(f"{where}: bad scale_range {value!r} (want 0 < min <= max <= 10, "
                            "occluder width in inter-ocular distances)")
    return lo, hi
