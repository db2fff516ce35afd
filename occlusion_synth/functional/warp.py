"""Anti-aliased warping of RGBA templates into image space: affine and thin-plate spline.

Both renderers work on premultiplied colour so that transparent pixels (whose RGB is often
black or garbage) never bleed a dark fringe into the soft edge, shrink the template with
``INTER_AREA`` when it shrinks a lot (bilinear sampling alone would alias), and only compute
the region of interest the occluder can reach, so cost scales with the occluder, not the photo.

Templates are *prepared* once (:func:`prepare_rgba`): premultiplied ``float32`` at full size and
at successive halvings (``INTER_AREA``), each level made on first use. A render picks the smallest
level still at least as large as the occluder will be, so its cost follows the output size, not
the template size. Preparations of read-only arrays (the templates of a loaded
``TemplateLibrary`` are read-only) are cached per process, keyed by the array object; a writable
array is prepared afresh on every call (it could change between calls).

Outputs are ``(rgb, alpha, box)``: ``rgb`` ``(h, w, 3) float32`` straight (un-premultiplied)
colour in 0..255, ``alpha`` ``(h, w) float32`` in 0..1 and ``box = (x0, y0, x1, y1)`` where the
patch sits in the image; ``None`` when the occluder falls outside the image.
"""
from __future__ import annotations

import math
import threading
import weakref
from functools import lru_cache
from typing import Union

import cv2
import numpy as np

from .geometry import matrix_scale, similarity_from_points, transform_points, warped_bbox

# Shrinking below this factor prescales with INTER_AREA first (bilinear aliases under ~0.75).
PRESCALE_BELOW = 0.75
# Smallest pyramid level side (pixels): a smaller level carries too little detail to start from.
MIN_LEVEL_SIDE = 8
# A shrink under PRESCALE_BELOW goes to the scale step nearest the one asked for, on a grid of
# SCALE_STEPS steps per octave (2 ** (1/16): the warp's own bilinear sampling then scales by
# 0.979-1.022, well inside the 0.75-1 it does alone), so faces of one size share a few shrinks
# instead of each drawing its own (an exact-size INTER_AREA shrink of a 128 px level took
# ~0.16 ms per face mask).
SCALE_STEPS = 16
# Shrinks kept per template (least recently used dropped first): a 100 px dataset draws each
# template at 6-8 steps, so nearly every render reuses one (at most ~100 KB each there).
SIZED_CACHE = 16


def scale_step(scale: float) -> float:
    """The ``2 ** (k / SCALE_STEPS)`` (integer ``k``) nearest ``scale`` (> 0) in log scale.
    Powers of two are steps, so the step of a scale never passes the pyramid level above it."""
    return 2.0 ** (round(SCALE_STEPS * math.log2(scale)) / SCALE_STEPS)


def _premultiplied(rgba: np.ndarray) -> np.ndarray:
    f = rgba.astype(np.float32)
    a = f[..., 3:4] / 255.0
    f[..., :3] *= a
    f[..., 3] = a[..., 0]
    return f


class PreparedRGBA:
    """A template ready to warp: premultiplied ``float32`` levels, each made on first use.

    Level 0 is the full-size ``(h, w, 4)`` premultiplied image (RGB in 0..255 times alpha, alpha
    in 0..1); level ``k`` is level 0 shrunk by ``2**k`` with ``INTER_AREA`` (always from level 0,
    so a level's pixels do not depend on which levels were made before).

    Args:
        rgba: ``(h, w, 4) uint8`` straight alpha; not copied (do not modify it afterwards).
    """

    def __init__(self, rgba: np.ndarray):
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise ValueError(f"template must be (h, w, 4) uint8 RGBA, got {rgba.dtype} {rgba.shape}")
        self.rgba = rgba
        self.height, self.width = int(rgba.shape[0]), int(rgba.shape[1])
        self._levels: dict[int, np.ndarray] = {}
        self._sized: dict[tuple, np.ndarray] = {}  # (level, w, h) -> exact-size shrink, LRU order
        self._lock = threading.Lock()

    def level(self, k: int) -> tuple[np.ndarray, float, float]:
        """Level ``k``: ``(image (h_k, w_k, 4) float32, fx, fy)`` with ``fx = w_k / w``, ``fy = h_k / h``."""
        with self._lock:
            img = self._levels.get(k)
            if img is None:
                full = self._levels.get(0)
                if full is None:
                    full = _premultiplied(self.rgba)
                if k == 0:
                    img = full
                else:
                    size = (max(2, int(round(self.width / 2 ** k))),
                            max(2, int(round(self.height / 2 ** k))))
                    img = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
                self._levels[k] = img
        return img, img.shape[1] / self.width, img.shape[0] / self.height

    def for_scale(self, scale: float) -> tuple[np.ndarray, float, float]:
        """The premultiplied image to warp for an overall shrink ``scale``, with its ``fx, fy``.

        A shrink under :data:`PRESCALE_BELOW` is done with ``INTER_AREA`` (bilinear sampling alone
        would alias) to the step of ``2 ** (1 / SCALE_STEPS)`` nearest ``scale``, so the warp that
        follows scales by 0.979-1.022 more (bilinear); it starts from the smallest level at
        least ``scale`` times the template size (sides not under :data:`MIN_LEVEL_SIDE`) instead
        of the full-size image, so its cost follows the output size, and the last shrinks are
        kept (:data:`SIZED_CACHE`).
        """
        k = 0
        while (scale * 2 ** (k + 1) <= 1.0
               and min(self.width, self.height) / 2 ** (k + 1) >= MIN_LEVEL_SIDE):
            k += 1
        img, fx, fy = self.level(k)
        if scale < PRESCALE_BELOW:
            scale = scale_step(scale)
            nw = max(2, int(round(self.width * scale)))
            nh = max(2, int(round(self.height * scale)))
            with self._lock:  # faces of one dataset come in a few sizes: keep the last shrinks
                shrunk = self._sized.pop((k, nw, nh), None)
                if shrunk is None:
                    shrunk = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
                    shrunk.flags.writeable = False
                self._sized[(k, nw, nh)] = shrunk
                while len(self._sized) > SIZED_CACHE:
                    self._sized.pop(next(iter(self._sized)))
            img = shrunk
            fx, fy = nw / self.width, nh / self.height
        return img, fx, fy

    @property
    def nbytes(self) -> int:
        """Bytes held by the levels and the cached exact-size shrinks."""
        return sum(v.nbytes for v in self._levels.values()) + sum(v.nbytes for v in self._sized.values())


_CACHE: dict[int, PreparedRGBA] = {}


def prepare_rgba(rgba: Union[np.ndarray, PreparedRGBA]) -> PreparedRGBA:
    """The :class:`PreparedRGBA` of ``rgba``, cached in this process when ``rgba`` is read-only.

    Args:
        rgba: ``(h, w, 4) uint8`` straight alpha, or an already prepared template (returned as is).

    The cache is keyed by the array object and its entry dropped when the array is
    garbage-collected; only read-only arrays (``rgba.flags.writeable`` False) are cached, since a
    writable one may change between calls.
    """
    if isinstance(rgba, PreparedRGBA):
        return rgba
    if not isinstance(rgba, np.ndarray):
        rgba = np.asarray(rgba)
    if rgba.flags.writeable:
        return PreparedRGBA(rgba)
    key = id(rgba)
    prepared = _CACHE.get(key)
    if prepared is None or prepared.rgba is not rgba:
        prepared = PreparedRGBA(rgba)
        _CACHE[key] = prepared
        weakref.finalize(rgba, _CACHE.pop, key, None)
    return prepared


def _unpremultiply(warped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb, alpha)`` float32 from a premultiplied warp: colour divided by alpha (0 where alpha
    <= 0), clipped to 0..255. OpenCV does the division as one reciprocal and one per-pixel
    multiply (~3x faster than numpy's masked divide on a 100 px face's patch)."""
    alpha = np.clip(warped[..., 3], 0.0, 1.0)
    inv = cv2.divide(1.0, np.maximum(alpha, np.float32(1e-6)))
    inv[alpha <= 0] = 0.0
    rgb = cv2.multiply(cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB), cv2.merge((inv, inv, inv)))
    np.clip(rgb, 0.0, 255.0, out=rgb)
    return rgb, alpha


@lru_cache(maxsize=512)
def _template_outline(h: int, w: int, n: int = 16) -> np.ndarray:
    """Points along the template border (pixel-edge coordinates); cached, read-only."""
    t = np.linspace(0.0, 1.0, n)
    xs, ys = -0.5 + t * w, -0.5 + t * h
    out = np.concatenate([
        np.stack([xs, np.full(n, -0.5)], 1), np.stack([xs, np.full(n, h - 0.5)], 1),
        np.stack([np.full(n, -0.5), ys], 1), np.stack([np.full(n, w - 0.5), ys], 1)])
    out.flags.writeable = False
    return out


@lru_cache(maxsize=256)
def _upsample_grid(bw: int, bh: int, grid_step: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ux, uy)`` ``(bh, bw) float32``: pixel ``j`` at coarse-map coordinate ``j / grid_step``
    (cached per patch size, read-only)."""
    ux, uy = np.meshgrid(np.arange(bw, dtype=np.float32) / grid_step,
                         np.arange(bh, dtype=np.float32) / grid_step)
    ux.flags.writeable = uy.flags.writeable = False
    return ux, uy


def render_affine(rgba: Union[np.ndarray, PreparedRGBA], matrix: np.ndarray, shape: tuple[int, int]):
    """Warp an RGBA template into an image of ``shape`` ``(H, W)`` with a ``(2, 3)`` matrix.

    Args:
        rgba: ``(h, w, 4) uint8`` straight-alpha template (or its :func:`prepare_rgba`).
        matrix: ``(2, 3)`` template pixel -> image pixel.
        shape: ``(H, W)`` of the destination image.

    Returns:
        ``(rgb, alpha, box)`` as described in the module docstring, or ``None``.
    """
    prepared = prepare_rgba(rgba)
    h, w = prepared.height, prepared.width
    m = np.asarray(matrix, np.float64).copy()
    box = warped_bbox(transform_points(m, _template_outline(h, w, 2)), shape)
    if box is None:
        return None
    src, fx, fy = prepared.for_scale(matrix_scale(m))
    if (fx, fy) != (1.0, 1.0):
        # small-image pixel centre x' maps to original x = (x' + 0.5) / fx - 0.5
        pre = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
        m = m @ pre
    x0, y0, x1, y1 = box
    m[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    rgb, alpha = _unpremultiply(warped)
    return rgb, alpha, box


def _tps_system(src: np.ndarray, regularization: float):
    """``(mu, sc, p, a)``: the normalised control points of a thin-plate spline from ``src`` and
    its ``(n + 3, n + 3)`` system matrix. Written as few whole-array operations as possible: it
    runs once per face mask, where numpy's per-call overhead is most of its cost."""
    n = len(src)
    mu = src.sum(0) / n
    c = src - mu
    sc = float(np.sqrt((c * c).sum() / n)) or 1.0  # as .mean(), less overhead
    p = c / sc
    a = np.empty((n + 3, n + 3))
    k = a[:n, :n]
    np.subtract(p[:, None, 0], p[None, :, 0], out=k)
    dy = p[:, None, 1] - p[None, :, 1]
    k *= k
    k += dy * dy
    # r^2 log r^2, 0 at r = 0 (there log(0 + 1) = 0)
    k *= np.log(k + (k == 0))
    a.reshape(-1)[:n * (n + 4):n + 4] += regularization  # (i, i) for i < n: row stride n + 3
    a[:n, n] = 1.0
    a[:n, n + 1:] = p
    a[n, :n] = 1.0
    a[n + 1:, :n] = p.T
    a[n:, n:] = 0.0
    return mu, sc, p, a


@lru_cache(maxsize=256)
def _tps_inverse(src_bytes: bytes, regularization: float):
    """``(mu, sc, p, inverse of the system matrix)`` for control points given as float64 bytes
    (a template's anchors: the same few sets on every face), or None when the system is singular."""
    mu, sc, p, a = _tps_system(np.frombuffer(src_bytes, np.float64).reshape(-1, 2), regularization)
    try:
        inv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return None
    for arr in (mu, p, inv):
        arr.flags.writeable = False
    return mu, sc, p, inv


def _tps_fit(src: np.ndarray, dst: np.ndarray, regularization: float, reuse: bool = False):
    """Fit a 2-D thin-plate spline mapping ``src`` -> ``dst`` (points normalised for conditioning).
    ``reuse``: ``src`` recurs (a template's anchors): its system is inverted once and cached."""
    if reuse:
        cached = _tps_inverse(np.ascontiguousarray(src, np.float64).tobytes(), float(regularization))
        if cached is not None:
            mu, sc, p, inv = cached
            return mu, sc, p, inv[:, :len(p)] @ dst
    mu, sc, p, a = _tps_system(src, regularization)
    n = len(p)
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = dst
    # OpenCV's LU solve: numpy's answer to ~1e-12, at 1/2.5 of its call overhead on these ~30x30
    # systems (and a direct solve is ~4x faster than lstsq)
    ok, coef = cv2.solve(a, rhs, flags=cv2.DECOMP_LU)
    if not ok:  # singular: repeated control points with no regularisation
        coef = np.linalg.lstsq(a, rhs, rcond=None)[0]
    return mu, sc, p, coef


def _tps_eval(model, pts: np.ndarray) -> np.ndarray:
    """The spline at ``(m, 2)`` points: ``(m, 2)``."""
    mu, sc, ctrl, coef = model
    q = (np.asarray(pts, np.float64) - mu) / sc
    n = len(ctrl)
    dx = q[:, 0:1] - ctrl[None, :, 0]
    dy = q[:, 1:2] - ctrl[None, :, 1]
    d2 = dx * dx + dy * dy
    # r^2 log r^2 with 0 at r = 0 (the clamp only touches exact hits, whose product is 0 anyway)
    u = d2 * np.log(np.maximum(d2, 1e-300))
    return u @ coef[:n] + coef[n] + q @ coef[n + 1:]


def _tps_eval_grid(model, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The spline on the grid ``xs`` x ``ys``: ``(len(ys), len(xs), 2)``, as :func:`_tps_eval`
    on its points but with the squared distances added from per-row and per-column parts (no
    point list, half the full-size arithmetic)."""
    mu, sc, ctrl, coef = model
    n = len(ctrl)
    qx = (np.asarray(xs, np.float64) - mu[0]) / sc
    qy = (np.asarray(ys, np.float64) - mu[1]) / sc
    dx = qx[:, None] - ctrl[None, :, 0]
    dy = qy[:, None] - ctrl[None, :, 1]
    d2 = (dy * dy)[:, None, :] + (dx * dx)[None, :, :]
    u = d2 * np.log(np.maximum(d2, 1e-300))
    out = (u.reshape(-1, n) @ coef[:n]).reshape(len(qy), len(qx), 2)
    out += coef[n]
    out += qx[None, :, None] * coef[n + 1]
    out += qy[:, None, None] * coef[n + 2]
    return out


def render_tps(rgba: Union[np.ndarray, PreparedRGBA], src_points: np.ndarray, dst_points: np.ndarray,
               shape: tuple[int, int], regularization: float = 1e-3, grid_step: int = 4):
    """Warp an RGBA template with a thin-plate spline so ``src_points`` land on ``dst_points``.

    Used for face masks: the template's ``lm<i>`` anchors go onto the face's own jaw and nose
    landmarks, so the mask bends with the jaw line and follows yaw and roll. Far from the
    anchors the spline is affine, so ear loops and edges extrapolate smoothly.

    Args:
        rgba: ``(h, w, 4) uint8`` template (or its :func:`prepare_rgba`).
        src_points: ``(N, 2)`` template pixels, ``N >= 3``.
        dst_points: ``(N, 2)`` image pixels.
        shape: ``(H, W)`` of the destination image.
        regularization: spline smoothing (normalised units); > 0 keeps noisy landmarks from
            folding the template.
        grid_step: the inverse map is evaluated every ``grid_step`` pixels and interpolated.

    Returns:
        ``(rgb, alpha, box)`` or ``None`` (see the module docstring).
    """
    src = np.asarray(src_points, np.float64).reshape(-1, 2)
    dst = np.asarray(dst_points, np.float64).reshape(-1, 2)
    if len(src) < 3 or len(src) != len(dst):
        raise ValueError(f"need >= 3 matching point pairs, got {len(src)} and {len(dst)}")
    prepared = prepare_rgba(rgba)
    h, w = prepared.height, prepared.width
    forward = _tps_fit(src, dst, regularization, reuse=True)  # src: the template's anchors
    outline = _tps_eval(forward, _template_outline(h, w, 12))  # 48 border points (24 measured the same boxes)
    span = float(np.ptp(outline, axis=0).max())
    box = warped_bbox(outline, shape, pad=2 + int(0.05 * span))
    if box is None:
        return None
    # render at output resolution: start from the template level nearest the occluder's size
    premult, fx, fy = prepared.for_scale(matrix_scale(similarity_from_points(src, dst)))
    if (fx, fy) != (1.0, 1.0):
        src = np.stack([(src[:, 0] + 0.5) * fx - 0.5, (src[:, 1] + 0.5) * fy - 0.5], 1)
    inverse = _tps_fit(dst, src, regularization)
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    nx, ny = int(math.ceil((bw - 1) / grid_step)) + 1, int(math.ceil((bh - 1) / grid_step)) + 1
    coarse = _tps_eval_grid(inverse, x0 + grid_step * np.arange(nx), y0 + grid_step * np.arange(ny))
    coarse = coarse.astype(np.float32)
    # bilinear upsampling of the coarse map: pixel j sits at coarse coordinate j / grid_step
    ux, uy = _upsample_grid(int(bw), int(bh), int(grid_step))
    full = cv2.remap(coarse, ux, uy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    warped = cv2.remap(premult, full[..., 0], full[..., 1], interpolation=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    rgb, alpha = _unpremultiply(warped)
    return rgb, alpha, box
