"""Contact sheets for judging occluder realism at a glance.

One column per sample and three rows per band: original face crop, occluded crop (with a
label: template and occluded fraction), occlusion mask. Columns wrap into several bands.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import cv2
import numpy as np

from .errors import NoFaceError, OcclusionSynthError, PlacementError
from .io import IMAGE_EXTENSIONS

GAP = 4
PAD_VALUE = 128  # neutral grey beyond the photo's border (no stretched edge streaks)
LABEL_FRACTION = 0.16  # label strip height / tile size


def crop_face(image: np.ndarray, landmarks: np.ndarray, size: int, margin: float = 0.25):
    """Square face crop resized to ``size``: the same crop as ``generate --crop face``
    (:func:`occlusion_synth.functional.crop.face_crop`).

    Where the crop reaches past the photo's border it is filled with neutral grey
    (``PAD_VALUE``), not a stretched copy of the border.

    Returns:
        ``(crop (size, size, 3) uint8, landmarks (68, 2) float64 in crop pixels)``.
    """
    from .functional.crop import face_crop

    res = face_crop(image, landmarks, margin, size, pad_value=PAD_VALUE)
    return res.image, res.landmarks.astype(np.float64)


def sheet_size(n: int, tile: int, columns: int = 8) -> tuple[int, int]:
    """``(height, width)`` of the sheet :func:`contact_sheet` makes for ``n`` samples."""
    cols = min(n, columns)
    bands = math.ceil(n / cols)
    label = int(round(tile * LABEL_FRACTION))
    band_h = 3 * tile + label + 4 * GAP
    return bands * band_h + GAP, cols * tile + (cols + 1) * GAP


def _put_label(canvas: np.ndarray, text: str, x: int, y: int, width: int, height: int) -> None:
    scale = max(0.25, height / 40.0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    while scale > 0.2 and cv2.getTextSize(text, font, scale, 1)[0][0] > width:
        scale -= 0.02
    (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
    cv2.putText(canvas, text, (x + max(0, (width - tw) // 2), y + (height + th) // 2), font, scale,
                (20, 20, 20), 1, cv2.LINE_AA)


def contact_sheet(items: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]], columns: int = 8,
                  background: int = 235) -> np.ndarray:
    """Lay out ``(original, occluded, mask, label)`` tuples (tiles all the same square size).

    Returns:
        ``(H, W, 3) uint8`` RGB sheet of size :func:`sheet_size`.
    """
    if not items:
        raise ValueError("contact_sheet needs at least one item")
    tile = items[0][0].shape[0]
    h, w = sheet_size(len(items), tile, columns)
    label_h = int(round(tile * LABEL_FRACTION))
    band_h = 3 * tile + label_h + 4 * GAP
    sheet = np.full((h, w, 3), background, np.uint8)
    cols = min(len(items), columns)
    for i, (orig, occ, mask, label) in enumerate(items):
        band, col = divmod(i, cols)
        x = GAP + col * (tile + GAP)
        y = GAP + band * band_h
        sheet[y:y + tile, x:x + tile] = orig
        _put_label(sheet, label, x, y + tile + GAP, tile, label_h)
        y2 = y + tile + label_h + 2 * GAP
        sheet[y2:y2 + tile, x:x + tile] = occ
        y3 = y2 + tile + GAP
        sheet[y3:y3 + tile, x:x + tile] = np.repeat(mask[..., None], 3, axis=2)
    return sheet


def sample_label(params) -> str:
    """What a tile shows: the template name (``hand/fist_medium``) or ``block/<kind>``."""
    if params.category == "block":
        return f"block/{params.template}"
    return params.template or params.category


def list_images(src: Path) -> list[Path]:
    """One image, or the images in a folder (recursively, sorted; anything named like an image,
    so that a FIFO or folder named ``x.jpg`` is reported by the reader instead of skipped silently)."""
    src = Path(src)
    if not src.is_dir():
        return [src]
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise OcclusionSynthError(f"{src}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found")
    return files


def make_preview(sources: Iterable, occlude, n: int = 16, size: int = 224, seed: int = 0,
                 backend: str = "auto", columns: int = 8, max_sources: int = 64, faces: str = "largest",
                 on_error: Optional[Callable[[str], None]] = None) -> np.ndarray:
    """Occlude ``n`` face crops (cycling over ``sources``) and lay them out as a contact sheet.

    Args:
        sources: image paths or ``(H, W, 3) uint8`` arrays.
        occlude: an :class:`occlusion_synth.transforms.Occlude`.
        n: number of samples (columns of the sheet).
        size: face crop size in pixels (tile size).
        seed: sample ``i`` uses ``numpy.random.default_rng([seed, i])``.
        backend: landmark backend for the sources.
        faces: ``largest`` = one crop per source; ``all`` = one crop per detected face.
        on_error: called with a one-line message for each source that cannot be used (unreadable,
            not a regular file, no face); the others go on. None = ignore them silently.

    Raises:
        NoFaceError: no source had a face.
    """
    from .io import read_image
    from .landmarks import detect

    report = on_error or (lambda message: None)
    crops = []
    for src in list(sources)[:max_sources]:
        name = str(src) if not isinstance(src, np.ndarray) else "<array>"
        try:
            image = read_image(src) if not isinstance(src, np.ndarray) else src
            if int(image.max()) - int(image.min()) < 8:
                raise NoFaceError(f"{name}: no face (uniform image)")
            found = detect(image, backend=backend, name=name, all_faces=faces == "all")
        except OcclusionSynthError as exc:
            report(str(exc))
            continue
        crops += [crop_face(image, face.landmarks, size) for face in found]
    if not crops:
        raise NoFaceError(f"no face found in any of the preview sources (backend {backend!r})")
    items = []
    for i in range(n):
        crop, lm = crops[i % len(crops)]
        try:
            res = occlude(crop, lm, np.random.default_rng([seed, i]))
            label = f"{sample_label(res['params'])} {res['params'].occluded_fraction:.2f}"
            items.append((crop, res["image"], res["mask"], label))
        except PlacementError:
            items.append((crop, crop, np.zeros(crop.shape[:2], np.uint8), "no placement"))
    return contact_sheet(items, columns=columns)
