"""The forearm behind a hand template: the wrist continued to the edge of the photo.

Hand templates end at the wrist (their bottom rows are the wrist's cross-section, see
:mod:`occlusion_synth.templates.hands`). Pasted as they are, a hand ends in mid-air on the
cheek; a real hand over a face comes with its forearm. :func:`render_forearm` continues the
template's bottom rows along the template's "down" axis until the photo's border: every cross
section carries the wrist's colour and shading profile (so the arm reads as the same lit
cylinder), stretched to widen by :data:`WIDEN` per template height towards the elbow.

Rendered directly at output resolution (the profile is shrunk with ``INTER_AREA`` to the
output scale, then sampled with ``cv2.remap``), so its cost follows the arm's size in the photo.
Outputs follow :mod:`occlusion_synth.functional.warp`: ``(rgb, alpha, box)``, straight ``float32``
colour 0..255, alpha 0..1.
"""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

from .geometry import matrix_scale
from .warp import _unpremultiply

PROFILE_ROWS = 3        # bottom template rows averaged into the cross-section profile
WIDEN = 0.2             # the arm widens by this fraction of the wrist per template height of length
MAX_LENGTH = 1.2        # at most this many template heights of arm (a forearm), then it fades out
OVERLAP = 1.0           # output pixels the arm starts above the wrist line (no seam under the hand)


def forearm_profile(rgba: np.ndarray) -> Optional[np.ndarray]:
    """The wrist's cross-section: ``(w, 4) float32`` premultiplied (RGB x alpha, alpha 0..1), or
    None when the template's bottom rows are transparent (the hand is not cut at the wrist)."""
    rows = np.asarray(rgba[-PROFILE_ROWS:], np.float32)
    alpha = rows[..., 3] / 255.0
    if alpha.max() < 0.5:
        return None
    prof = np.empty((rows.shape[1], 4), np.float32)
    prof[:, :3] = (rows[..., :3] * alpha[..., None]).mean(0)
    prof[:, 3] = alpha.mean(0)
    return prof


def has_forearm(rgba: np.ndarray) -> bool:
    """True when the template is cut at the wrist along its bottom edge."""
    return forearm_profile(rgba) is not None


def _length_to_border(origin: np.ndarray, direction: np.ndarray, shape: tuple[int, int]) -> float:
    """Distance from ``origin`` along unit ``direction`` to where it leaves the ``(H, W)`` frame."""
    h, w = shape
    best = math.inf
    for o, d, hi in ((origin[0], direction[0], w - 0.5), (origin[1], direction[1], h - 0.5)):
        if d > 1e-9:
            best = min(best, (hi - o) / d)
        elif d < -1e-9:
            best = min(best, (-0.5 - o) / d)
    return max(0.0, best)


def render_forearm(rgba: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]):
    """Render the forearm of a hand template placed with ``matrix`` in an image of ``shape``.

    Args:
        rgba: ``(h, w, 4) uint8`` straight-alpha hand template, wrist along the bottom edge.
        matrix: ``(2, 3)`` template pixel -> image pixel (the hand's placement).
        shape: ``(H, W)`` of the destination image.

    Returns:
        ``(rgb, alpha, box)`` or None (no wrist at the bottom edge, or the arm is off the image).
    """
    prof = forearm_profile(rgba)
    if prof is None:
        return None
    th, tw = rgba.shape[:2]
    m = np.asarray(matrix, np.float64)
    scale = matrix_scale(m)
    across = m[:, 0] / (np.linalg.norm(m[:, 0]) + 1e-12)   # template +x in the image
    down = m[:, 1] / (np.linalg.norm(m[:, 1]) + 1e-12)     # template +y: along the arm
    # the wrist line: the template's bottom edge, its centre mapped into the image
    opaque = np.flatnonzero(prof[:, 3] > 0.05)
    cx_t = 0.5 * (opaque[0] + opaque[-1])
    half_t = 0.5 * (opaque[-1] - opaque[0] + 1) + 1.0
    centre = m @ np.array([cx_t, th - 0.5, 1.0])
    to_border = _length_to_border(centre, down, shape) + 2.0
    length = min(to_border, MAX_LENGTH * th * scale)
    if length <= 1.0:
        return None
    half_end = half_t * scale * (1 + WIDEN * length / (th * scale))
    corners = np.array([centre + s * half * across + t * down
                        for t, half in ((-OVERLAP, half_t * scale), (length, half_end)) for s in (-1, 1)])
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])
    if x1 <= x0 or y1 <= y0:
        return None
    # the profile at output resolution (area-shrunk: no aliased edge), premultiplied
    out_w = max(2, int(round(tw * scale)))
    small = cv2.resize(prof[None], (out_w, 1), interpolation=cv2.INTER_AREA)[0] if out_w < tw else prof
    fx = small.shape[0] / tw
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    px, py = xs - np.float32(centre[0]), ys - np.float32(centre[1])
    t = px * np.float32(down[0]) + py * np.float32(down[1])           # along the arm, output px
    u = px * np.float32(across[0]) + py * np.float32(across[1])       # across, output px
    widen = 1 + WIDEN * np.maximum(t, 0) / np.float32(th * scale)
    # template x of this cross-section point, then the profile's (shrunk) pixel
    map_x = ((cx_t + u / (np.float32(scale) * widen) + 0.5) * fx - 0.5).astype(np.float32)
    map_y = np.zeros_like(map_x)
    inside = (t >= -OVERLAP) & (t <= length)
    sampled = cv2.remap(small[None], map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    sampled[~inside] = 0
    rgb, alpha = _unpremultiply(sampled)
    if length < to_border:  # stopped inside the photo: fade out over the last 40 % (colour kept)
        alpha *= np.clip((length - t) / (0.4 * length), 0.0, 1.0)
    return rgb, alpha, (int(x0), int(y0), int(x1), int(y1))


def over(front, back):
    """Composite two ``(rgb, alpha, box)`` patches, ``front`` over ``back``, into one patch on the
    union of their boxes (straight colour; either may be None)."""
    if back is None:
        return front
    if front is None:
        return back
    (fr, fa, fb), (br, ba, bb) = front, back
    x0, y0 = min(fb[0], bb[0]), min(fb[1], bb[1])
    x1, y1 = max(fb[2], bb[2]), max(fb[3], bb[3])
    acc = np.zeros((y1 - y0, x1 - x0, 4), np.float32)  # premultiplied RGB and alpha
    for rgb, a, (bx0, by0, bx1, by1) in ((br, ba, bb), (fr, fa, fb)):  # back first, front over it
        region = acc[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
        region *= (1.0 - a)[..., None]
        region[..., :3] += rgb * a[..., None]
        region[..., 3] += a
    rgb, alpha = _unpremultiply(acc)
    return rgb, alpha, (x0, y0, x1, y1)
