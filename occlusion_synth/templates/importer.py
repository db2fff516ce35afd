"""Turn a user's own occluder photos into validated templates (``occsynth templates import``).

A photo with an alpha channel keeps it. A photo without one is cut out of its plain background
with OpenCV GrabCut, initialised from a border model: a band along the image border is certain
background, pixels far from the border colours are probable foreground, the rest probable
background. The cut-out is cropped, scaled to at most ``max_size`` pixels on its longer side,
its anchors are guessed from the footprint (see :func:`guess_anchors`), and it is written as
``<out>/<category>/<stem>.png`` + ``.json`` only after the validator found no error in it.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import TemplateError
from ..io import atomic_write_bytes
from .alpha import alpha_centroid, crop_to_alpha, keep_main_parts, resize_rgba
from .library import CATEGORIES, PathLike, guess_mask_anchors
from .sidecar import read_sidecar

BORDER_FRACTION = 0.04  # width of the certain-background band, fraction of the shorter side
# border colour spread (mean Lab distance of border pixels to the nearest of 4 colour clusters)
# above which the background is not plain enough to cut out
MAX_BORDER_SPREAD = 15.0
# a pixel this far (Lab) from every border colour cluster starts as probable foreground
FOREGROUND_DISTANCE = 20.0
# border colour clusters holding less than this share of the border are the object, not background
MIN_BACKGROUND_SHARE = 0.12
GRABCUT_ITERATIONS = 5
MIN_FOREGROUND, MAX_FOREGROUND = 0.01, 0.95  # plausible cut-out area, fraction of the photo
DEFAULT_MAX_SIZE = 256
CUT_SIZE = 800  # photos are segmented at most this many pixels on their longer side
PAD = 4


@dataclass
class ImportResult:
    """What :func:`import_photo` did with one photo.

    Attributes:
        source: the photo read.
        image: the template PNG written.
        sidecar: its JSON sidecar.
        alpha_from: ``"alpha channel"`` or ``"grabcut"``.
        anchors: the anchors written (template pixels).
        size: ``(width, height)`` of the template.
        warnings: validator warnings (the template was written anyway).
    """

    source: Path
    image: Path
    sidecar: Path
    alpha_from: str
    anchors: dict[str, tuple[float, float]]
    size: tuple[int, int]
    warnings: list[str] = field(default_factory=list)


def read_photo(path: Path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(rgb (h, w, 3) uint8, alpha (h, w) uint8 or None)`` of an image file.

    Raises:
        TemplateError: missing or unreadable file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            rgba = np.array(im.convert("RGBA"), dtype=np.uint8)
    except FileNotFoundError:
        raise TemplateError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise TemplateError(f"{path}: is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise TemplateError(f"{path}: cannot read image ({exc})") from None
    alpha = rgba[..., 3].copy()
    if has_alpha and alpha.min() == 255:
        has_alpha = False  # an alpha channel that hides nothing carries no cut-out
    return np.ascontiguousarray(rgba[..., :3]), (alpha if has_alpha else None)


def cut_out(rgb: np.ndarray, name: str = "<image>") -> np.ndarray:
    """Alpha of the object in ``rgb`` on a plain background (GrabCut from a border model).

    Args:
        rgb: ``(h, w, 3) uint8``.
        name: used in error messages.

    Returns:
        ``(h, w) uint8`` alpha with a soft (about 1 px) edge.

    Raises:
        TemplateError: the border is not a plain background, or the cut-out is empty or the
            whole photo.
    """
    import cv2

    h, w = rgb.shape[:2]
    if min(h, w) < 16:
        raise TemplateError(f"{name}: too small to cut out ({w}x{h})")
    if max(h, w) > CUT_SIZE:
        # segment a reduced copy (GrabCut is slow and memory-hungry on camera-sized photos) and
        # scale the soft alpha back up
        f = CUT_SIZE / max(h, w)
        small = cv2.resize(rgb, (max(16, round(w * f)), max(16, round(h * f))), interpolation=cv2.INTER_AREA)
        return cv2.resize(cut_out(small, name), (w, h), interpolation=cv2.INTER_LINEAR)
    band = max(2, int(round(BORDER_FRACTION * min(h, w))))
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.zeros((h, w), bool)
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    samples = lab[border]
    # a few border colour clusters: a plain background, possibly with a light gradient or texture
    k = min(4, len(samples))
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(samples, k, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5),
                                    3, cv2.KMEANS_PP_CENTERS)
    spread = float(np.linalg.norm(samples - centres[labels.ravel()], axis=1).mean())
    if spread > MAX_BORDER_SPREAD:
        raise TemplateError(f"{name}: the background is not plain (border colour spread {spread:.0f} > "
                            f"{MAX_BORDER_SPREAD:.0f}); photograph the object on a plain background "
                            "or give a PNG with an alpha channel")
    # a rare border colour is the object cut off by the frame (an arm, a bottle's base), not background
    share = np.bincount(labels.ravel(), minlength=k) / len(samples)
    background = centres[share >= MIN_BACKGROUND_SHARE]
    dist = np.min(np.linalg.norm(lab[..., None, :] - background[None, None], axis=-1), axis=-1)
    mask = np.where(dist > FOREGROUND_DISTANCE, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[border & (dist <= FOREGROUND_DISTANCE)] = cv2.GC_BGD
    if not (mask == cv2.GC_PR_FGD).any():
        raise TemplateError(f"{name}: no object found (every pixel looks like the background)")
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation draws from OpenCV's global generator
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd, GRABCUT_ITERATIONS,
                cv2.GC_INIT_WITH_MASK)
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = keep_main_parts(cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)))
    frac = float(fg.mean())
    if frac < MIN_FOREGROUND:
        raise TemplateError(f"{name}: the cut-out object is too small ({100 * frac:.1f}% of the photo)")
    if frac > MAX_FOREGROUND:
        raise TemplateError(f"{name}: no background left around the object ({100 * frac:.0f}% of the "
                            "photo is foreground); leave a plain margin around it")
    # anti-aliased edge: blur the binary cut-out a little, keep the inside opaque
    soft = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), 0.8)
    return np.clip(np.round(soft * 255.0), 0, 255).astype(np.uint8)


def _extreme(alpha: np.ndarray, direction: tuple[float, float], depth: float) -> tuple[float, float]:
    """Middle of the part of the footprint within ``depth`` px of its extreme along ``direction``."""
    ys, xs = np.nonzero(alpha > 127)
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    proj = xs * d[0] + ys * d[1]
    sel = proj >= proj.max() - depth
    return float(xs[sel].mean()), float(ys[sel].mean())


def _touching_side(alpha: np.ndarray) -> Optional[tuple[float, float]]:
    """Direction ``(dx, dy)`` of the photo border the object is cut off at most (an arm leaving
    the frame), or None when it touches no border."""
    solid = alpha > 127
    counts = {(0.0, 1.0): solid[-1].sum(), (0.0, -1.0): solid[0].sum(),
              (1.0, 0.0): solid[:, -1].sum(), (-1.0, 0.0): solid[:, 0].sum()}
    side, n = max(counts.items(), key=lambda kv: kv[1])
    return side if n > 0 else None


def _snap_inside(points: dict[str, tuple[float, float]], solid: np.ndarray) -> dict[str, tuple[float, float]]:
    """Move points that fall outside the footprint (a rounded mask's box corners) onto its nearest
    visible pixel, so the top corners lm1/lm15 sit on the mask's corners."""
    from scipy import ndimage

    _, (iy, ix) = ndimage.distance_transform_edt(solid == 0, return_indices=True)
    h, w = solid.shape
    out = {}
    for key, (x, y) in points.items():
        xi, yi = min(max(int(round(x)), 0), w - 1), min(max(int(round(y)), 0), h - 1)
        out[key] = (x, y) if solid[yi, xi] else (float(ix[yi, xi]), float(iy[yi, xi]))
    return out


def _thickest(inside: np.ndarray) -> tuple[float, float]:
    """Middle of the footprint's thickest part: centroid of the pixels whose distance to the edge
    is at least 90% of the maximum (a ridge, not the first maximum found)."""
    ys, xs = np.nonzero(inside >= 0.9 * inside.max())
    return float(xs.mean()), float(ys.mean())


def guess_anchors(alpha: np.ndarray, category: str,
                  wrist_side: Optional[tuple[float, float]] = None) -> dict[str, tuple[float, float]]:
    """Anchors for a cut-out, from its footprint.

    * every category: ``center`` (alpha centroid);
    * hand: ``wrist`` (middle of the end where the arm continues: the photo border the hand was
      cut off at, ``wrist_side``, else the bottom) and ``grip`` (the palm: the footprint's
      thickest point, the maximum of its distance transform);
    * drink: ``rim`` (middle of the top of the footprint, what goes on the lips) and ``grip``
      (the thickest point of the body below the rim, where a hand would hold it);
    * food: ``grip`` (thickest point, where it is held);
    * mask: the ``lm<i>`` landmark anchors from the body's bounding box
      (:func:`~occlusion_synth.templates.library.guess_mask_anchors`), points outside the footprint
      moved onto it: ``lm1``/``lm15`` are the top corners, ``lm8`` the chin, ``lm28`` the nose bridge.

    Returns:
        name -> ``(x, y)`` template pixels, rounded to 0.01 px.
    """
    import cv2

    h, w = alpha.shape
    solid = (alpha > 127).astype(np.uint8)
    inside = cv2.distanceTransform(np.pad(solid, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    anchors: dict[str, tuple[float, float]] = {"center": alpha_centroid(alpha)}
    depth = 0.06 * max(h, w)
    if category == "hand":
        anchors["wrist"] = _extreme(alpha, wrist_side or (0.0, 1.0), depth)
        anchors["grip"] = _thickest(inside)
    elif category == "drink":
        anchors["rim"] = _extreme(alpha, (0.0, -1.0), depth)
        body = inside.copy()
        body[: int(anchors["rim"][1] + 0.15 * h)] = 0
        if not body.any():
            body = inside
        anchors["grip"] = _thickest(body)
    elif category == "food":
        anchors["grip"] = _thickest(inside)
    elif category == "mask":
        anchors.update(_snap_inside(guess_mask_anchors(alpha), solid))
    return {k: (round(float(x), 2), round(float(y), 2)) for k, (x, y) in anchors.items()}


def prepare_template(rgb: np.ndarray, alpha: np.ndarray, max_size: int) -> tuple[np.ndarray, tuple[float, float], float]:
    """Crop to the footprint (+4 px margin) and shrink so the longer side is at most ``max_size``.

    Returns:
        ``(rgba (h, w, 4) uint8, offset (x, y) of the crop in the photo, scale applied)``.
    """
    rgba = np.dstack([rgb, alpha])
    crop, (ox, oy) = crop_to_alpha(rgba, pad=PAD)
    h, w = crop.shape[:2]
    scale = min(1.0, max_size / max(h, w))
    if scale < 1.0:
        crop = resize_rgba(crop, (max(16, round(w * scale)), max(16, round(h * scale))))
    return crop, (float(ox - PAD), float(oy - PAD)), scale


def import_photo(photo: PathLike, category: str, out: PathLike, name: Optional[str] = None,
                 max_size: int = DEFAULT_MAX_SIZE, overwrite: bool = False, licence: str = "unknown",
                 description: Optional[str] = None) -> ImportResult:
    """Make one template from one photo and write it to ``out/<category>/<name>.png`` + ``.json``.

    Args:
        photo: the image file (PNG with alpha, or any photo on a plain background).
        category: one of :data:`CATEGORIES`.
        out: library root; the template goes into its ``<category>`` folder.
        name: file stem (default: the photo's stem, lower-cased, spaces as ``_``).
        max_size: longer side of the template in pixels (larger cut-outs are shrunk).
        overwrite: replace an existing template of that name (default: refuse).
        licence: recorded in the sidecar.
        description: recorded in the sidecar (default: the stem in words).

    Raises:
        TemplateError: unreadable photo, no plain background to cut from, an existing file (without
            ``overwrite``), or a validator error in the result. Nothing is written then.
    """
    from .build import encode_png, sidecar_json
    from .validate import validate_templates

    photo = Path(photo)
    if category not in CATEGORIES:
        raise TemplateError(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
    if max_size < 16:
        raise TemplateError(f"--max-size {max_size}: templates need at least 16 px a side")
    stem = name or photo.stem.strip().lower().replace(" ", "_")
    if not stem or "/" in stem or stem.startswith("."):
        raise TemplateError(f"{photo}: bad template name {stem!r} (give --name)")
    if stem.endswith("_mask"):
        raise TemplateError(f"{photo}: template name {stem!r} ends in '_mask', which the loader reads as "
                            "another image's alpha mask; give another --name")
    folder = Path(out) / category
    png_path, json_path = folder / f"{stem}.png", folder / f"{stem}.json"
    existing = [p for p in (png_path, json_path) if p.exists()]
    if existing and not overwrite:
        raise TemplateError(f"{existing[0]}: already exists (use --force to replace it, or --name)")
    rgb, alpha = read_photo(photo)
    alpha_from = "alpha channel"
    if alpha is None:
        alpha = cut_out(rgb, str(photo))
        alpha_from = "grabcut"
    elif not alpha.any():
        raise TemplateError(f"{photo}: the alpha channel is fully transparent")
    wrist_side = _touching_side(alpha) if category == "hand" else None
    rgba, _, _ = prepare_template(rgb, alpha, max_size)
    anchors = guess_anchors(rgba[..., 3], category, wrist_side)
    meta = sidecar_json(category, rgba, anchors, licence, f"imported from {photo.name} "
                        f"(alpha: {alpha_from}) by occsynth templates import",
                        description or stem.replace("_", " "))
    png = encode_png(rgba)
    # validate a copy first, so a template with errors never lands in the library
    with tempfile.TemporaryDirectory() as tmp:
        tmp_png = Path(tmp) / category / f"{stem}.png"
        tmp_png.parent.mkdir()
        tmp_png.write_bytes(png)
        tmp_png.with_suffix(".json").write_bytes(meta)
        problems = validate_templates(tmp_png)
    errors = [p.reason for p in problems if p.severity == "error"]
    if errors:
        raise TemplateError(f"{photo}: the template fails validation: {'; '.join(errors)}")
    atomic_write_bytes(png_path, png)
    atomic_write_bytes(json_path, meta)
    h, w = rgba.shape[:2]
    return ImportResult(source=photo, image=png_path, sidecar=json_path, alpha_from=alpha_from,
                        anchors=read_sidecar(json_path)["anchors"], size=(w, h),
                        warnings=[p.reason for p in problems if p.severity != "error"])


def describe_result(result: ImportResult) -> str:
    """One line per imported photo: where it went, how it was cut, what anchors were guessed."""
    anchors = result.anchors
    shown = {k: v for k, v in anchors.items() if not k.startswith("lm")}
    lms = [k for k in anchors if k.startswith("lm")]
    parts = ", ".join(f"{k} ({x:.0f}, {y:.0f})" for k, (x, y) in sorted(shown.items()))
    if lms:
        parts += f", {len(lms)} landmark anchors lm1..lm57 from the mask's box"
    w, h = result.size
    line = f"{result.source} -> {result.image} ({w}x{h}, alpha from {result.alpha_from}); anchors: {parts}"
    return line + "".join(f"\n  warning: {msg}" for msg in result.warnings)


__all__ = ["ImportResult", "cut_out", "describe_result", "guess_anchors", "import_photo", "read_photo"]
