"""Render one demo face: neutralise a real photo's mouth, warp it into an expression, vary it.

Per photo, once (:func:`prepare_photo`): align the face into a padded *canvas* at twice the
output resolution (eyes level, RAF-DB-aligned framing), inpaint the open mouth of smiling or
talking photos, and build the photo's *neutral target*: its own landmarks with the mouth
replaced by a relaxed closed mouth (:data:`~.expressions.NEUTRAL_MOUTH`).

Per sample (:func:`render_sample`): target = neutral target + class displacements; a thin-plate
spline through the landmarks (plus fixed anchors around the face and on the canvas border) maps
every output pixel back to the canvas (one ``cv2.remap``, composed with the random pose), then
the mouth interior and furrows are painted, the image is downscaled (area) and photometrically
varied.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..landmarks.schemes import eye_centres, inter_ocular_distance
from . import expressions as ex
from .variation import FLIP_68, photometric, pose_matrix
from .warps import ThinPlateSpline, apply_affine, compose_affine, dense_map, similarity

# aligned framing (as occlusion_synth.landmarks.align.aligned_crop, RAF-DB-like):
EYE_Y = 0.40      # eye line at 40 % of the height
IOD_FRAC = 0.36   # eye centres 36 % of the width apart


@dataclass
class PreparedPhoto:
    """A photo ready for rendering (all coordinates in canvas pixels).

    Attributes:
        name: photo file name.
        canvas: ``(2W, 2W, 3) uint8 RGB`` aligned face with a ``W/2`` margin, ``W = 2 * size``.
        source: ``(68, 2)`` landmarks of the canvas face, inner lips moved to the closed-lip line.
        neutral: ``(68, 2)`` neutral target landmarks (mouth re-shaped to a relaxed closed mouth).
        anchors: ``(K, 2)`` points held fixed by every warp (around the face, canvas border).
        iod: inter-ocular distance in canvas pixels.
        work: ``W``, the working (2x supersampled) output size.
    """

    name: str
    canvas: np.ndarray
    source: np.ndarray
    neutral: np.ndarray
    anchors: np.ndarray
    iod: float
    work: int

    @property
    def pad(self) -> int:
        return self.work // 2


def frame_matrix(landmarks: np.ndarray, work: int) -> np.ndarray:
    """Similarity ``(2, 3)`` taking photo pixels to the aligned ``work x work`` frame (by the eyes)."""
    right, left = eye_centres(landmarks)
    half = IOD_FRAC * work / 2
    dst = np.array([(work / 2 - half - 0.5, EYE_Y * work - 0.5), (work / 2 + half - 0.5, EYE_Y * work - 0.5)])
    return similarity(np.stack([right, left]), dst)


def _close_mouth(canvas: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """Inpaint teeth and the dark mouth opening with the surrounding lip texture.

    dlib's inner-lip points often sit inside the real opening, so the mask is the inner-lip
    polygon (dilated) plus every pixel inside the outer lips whose brightness differs clearly
    from the lips' own (teeth are brighter, the cavity darker).
    """
    h, w = canvas.shape[:2]
    outer = np.zeros((h, w), np.uint8)
    cv2.fillPoly(outer, [np.round(lm[48:60]).astype(np.int32)], 255)
    inner = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inner, [np.round(lm[60:68]).astype(np.int32)], 255)
    r = max(1, int(round(0.035 * iod)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    inner = cv2.dilate(inner, disk)
    luma = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lips = (outer > 0) & (inner == 0)
    level = float(np.median(luma[lips])) if lips.any() else float(np.median(luma[outer > 0]))
    odd = (outer > 0) & ((luma < 0.7 * level) | (luma > 1.3 * level))
    mask = cv2.dilate(((inner > 0) | odd).astype(np.uint8) * 255, disk)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, disk)
    return cv2.inpaint(canvas, mask, max(2.0, 0.06 * iod), cv2.INPAINT_TELEA)


def prepare_photo(name: str, image: np.ndarray, landmarks: np.ndarray, size: int) -> PreparedPhoto:
    """Build the :class:`PreparedPhoto` of ``image`` ((H, W, 3) uint8 RGB) for ``size`` output."""
    work = 2 * size
    pad = work // 2
    m = frame_matrix(landmarks, work)
    m[:, 2] += pad
    k = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    src, pre = image, np.eye(3)[:2]
    if k < 0.8:  # area-downscale first so the rotation below does not alias
        src = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        sx, sy = src.shape[1] / image.shape[1], src.shape[0] / image.shape[0]
        # photo pixel x -> resized pixel (x + 0.5) * s - 0.5; invert it before m
        pre = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5]])
    full = compose_affine(m, pre)
    canvas = cv2.warpAffine(src, full, (2 * work, 2 * work), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT101)
    lm = apply_affine(m, landmarks)
    iod = inter_ocular_distance(lm)

    source = lm.copy()
    if ex.mouth_opening(lm) > 0.03 * iod:  # teeth or an open mouth: fill with lip texture
        canvas = _close_mouth(canvas, lm, iod)
    for up, lo in ex.INNER_PAIRS:
        source[up] = source[lo] = (lm[up] + lm[lo]) / 2

    # neutral target: a relaxed closed mouth; an open jaw is closed by the amount it is open
    neutral = lm.copy()
    opening = ex.mouth_opening(lm)
    closing = max(0.0, opening - 0.05 * iod)
    # the upper lip stays where it is and the jaw comes up (moving the upper lip up instead
    # squeezes the philtrum against the nose and folds the warp)
    centre = lm[[61, 62, 63]].mean(0) + (0.0, min(0.5 * opening, 0.04 * iod))
    neutral[48:68] = centre + ex.NEUTRAL_MOUTH * iod
    for idx, w in (((7, 8, 9), 0.9), ((6, 10), 0.7), ((5, 11), 0.4), ((4, 12), 0.15)):
        neutral[list(idx), 1] -= w * closing

    # anchors keep the warp local: a ring outside the jaw and above the brows, and the canvas edge
    face_c = lm[[27, 28, 29, 30, 33]].mean(0)
    jaw = lm[0:17]
    out_jaw = jaw + 0.45 * iod * (jaw - face_c) / np.linalg.norm(jaw - face_c, axis=1, keepdims=True)
    brow_top = lm[17:27] + (0.0, -0.75 * iod)
    n = 2 * work - 1
    edge = np.linspace(0, n, 9)
    border = np.array([(x, 0) for x in edge] + [(x, n) for x in edge]
                      + [(0, y) for y in edge[1:-1]] + [(n, y) for y in edge[1:-1]], np.float64)
    anchors = np.vstack([out_jaw, brow_top, border])
    return PreparedPhoto(name, canvas, source, neutral, anchors, iod, work)


# extra control points on straight lines between landmarks (fraction along the pair): they keep
# the spline from overshooting where a large region is compressed (closing a dropped jaw,
# pressed lips), which would otherwise fold the philtrum or the chin
BRIDGES = ([(a, b, 0.5) for a, b in ((31, 49), (32, 50), (33, 51), (34, 52), (35, 53))]
           + [(a, b, f) for a, b in ((59, 6), (58, 7), (57, 8), (56, 9), (55, 10)) for f in (1 / 3, 2 / 3)])


def control_points(landmarks: np.ndarray) -> np.ndarray:
    """``(68 + len(BRIDGES), 2)``: the landmarks followed by the bridge points between them."""
    extra = np.array([landmarks[a] + f * (landmarks[b] - landmarks[a]) for a, b, f in BRIDGES])
    return np.vstack([landmarks, extra])


def _micro(rng: np.random.Generator, iod: float) -> np.ndarray:
    """Small idiosyncratic shape changes every sample gets (neutral faces are not all alike)."""
    d = np.zeros((68, 2))
    d[17:27, 1] += rng.uniform(-0.03, 0.03) * iod
    w = rng.uniform(-0.025, 0.025) * iod
    d[[48, 60], 0] -= w
    d[[54, 64], 0] += w
    d[[48, 54, 60, 64], 1] += rng.uniform(-0.015, 0.015) * iod
    return d


def render_sample(photo: PreparedPhoto, expression: str, rng: np.random.Generator, size: int,
                  intensity_range: tuple[float, float] = (0.65, 1.25)) -> tuple[np.ndarray, np.ndarray, dict]:
    """Render one ``size x size`` face of ``expression`` from ``photo``.

    Args:
        photo: from :func:`prepare_photo` (its ``work`` must be ``2 * size``).
        expression: canonical class name.
        rng: the sample's own generator (all randomness comes from it).
        intensity_range: expression strength range (neutral ignores it).

    Returns:
        ``(image (size, size, 3) uint8 RGB, landmarks (68, 2) float32 in output pixels, params)``.
    """
    if photo.work != 2 * size:
        raise ValueError(f"photo prepared for size {photo.work // 2}, asked for {size}")
    iod, pad, work = photo.iod, photo.pad, photo.work
    intensity = 0.0 if expression == "neutral" else float(rng.uniform(*intensity_range))
    target = photo.neutral + _micro(rng, iod)
    target += ex.displacements(expression, target, iod, intensity, rng) if intensity else 0.0
    ex.keep_order(target, iod)

    pose, flipped = pose_matrix(rng, work)
    # output pixel -> frame pixel -> canvas pixel (+pad) -> (spline) -> canvas source pixel
    inv = np.linalg.inv(np.vstack([pose, (0, 0, 1)]))[:2]
    inv[:, 2] += pad
    tps = ThinPlateSpline(np.vstack([control_points(target), photo.anchors]),
                          np.vstack([control_points(photo.source), photo.anchors]))
    mx, my = dense_map(tps, work, work, step=max(2, work // 48), pre=inv)
    hi = cv2.remap(photo.canvas, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)

    out_lm = apply_affine(pose, target - pad)
    if flipped:
        out_lm = out_lm[FLIP_68]
    img = hi.astype(np.float32)
    ex.tint_lips(img, out_lm, sigma=0.5 * work / 100)
    kind = ex.MOUTH_INTERIOR.get(expression)
    if kind is not None and ex.mouth_opening(out_lm) > 0.03 * iod:
        ex.paint_mouth(img, out_lm, kind, sigma=0.35 * work / 100)
    else:
        ex.lip_line(img, out_lm, strength=0.4, width=work / 100)
    for lines, strength in ex.furrows(expression, out_lm, iod, intensity):
        ex.shade_lines(img, lines, width=work / 100, strength=strength)

    small = cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)
    small, params = photometric(small, rng)
    lm_small = ((out_lm + 0.5) * size / work - 0.5).astype(np.float32)
    params.update(intensity=intensity, flipped=flipped)
    return small, lm_small, params
