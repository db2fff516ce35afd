"""Expression definitions of the demo-data generator: landmark displacements and appearance edits.

Each class is a list of *components*: a set of iBUG-68 landmark indices and a displacement
``(outward, down)`` in units of the inter-ocular distance (IOD), where *outward* points away
from the face midline (so one entry moves both mouth corners symmetrically). Components follow
the FACS action units of the prototypical expressions (e.g. happiness = AU6 cheek raiser with
lower-lid squint + AU12 lip-corner puller + parted lips; anger = AU4 brow lowerer + AU7 lid
tightener + AU24 lip presser). Each component gets its own random gain per sample, so no two
faces of a class share the same shape.

Geometry cannot create what the photo does not show (teeth, a dark open mouth, furrows), so
:func:`paint_mouth` and :func:`shade_lines` add those on top of the warped face.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..labels import CANONICAL

Component = tuple[tuple[int, ...], tuple[float, float]]

UPPER_LIDS = (37, 38, 43, 44)
LOWER_LIDS = (40, 41, 46, 47)

# canonical class name -> components ((indices), (outward, down)) in IOD units
EXPRESSIONS: dict[str, list[Component]] = {
    "neutral": [],
    "happiness": [
        ((48, 54), (0.11, -0.13)), ((60, 64), (0.10, -0.11)), ((49, 53), (0.05, -0.07)),
        ((55, 59), (0.06, -0.02)), ((50, 52), (0.02, -0.03)),
        ((56, 57, 58), (0.0, 0.12)), ((65, 66, 67), (0.0, 0.13)), ((61, 62, 63), (0.0, -0.01)),
        (LOWER_LIDS, (0.0, -0.04)), (UPPER_LIDS, (0.0, 0.015)),
    ],
    "sadness": [
        ((48, 54), (-0.02, 0.11)), ((60, 64), (-0.02, 0.10)), ((49, 53, 55, 59), (0.0, 0.04)),
        ((56, 57, 58), (0.0, -0.015)), ((21, 22), (-0.03, -0.13)), ((20, 23), (0.0, -0.08)),
        ((19, 24), (0.0, -0.02)), ((17, 26), (0.0, 0.05)), (UPPER_LIDS, (0.0, 0.03)),
    ],
    "surprise": [
        ((17, 26), (0.0, -0.12)), ((18, 25), (0.0, -0.17)), ((19, 24), (0.0, -0.19)),
        ((20, 23), (0.0, -0.17)), ((21, 22), (0.0, -0.14)),
        (UPPER_LIDS, (0.0, -0.065)), (LOWER_LIDS, (0.0, 0.02)),
        ((7, 8, 9), (0.0, 0.22)), ((6, 10), (0.0, 0.16)), ((5, 11), (0.0, 0.08)), ((4, 12), (0.0, 0.03)),
        ((56, 57, 58), (0.0, 0.36)), ((55, 59), (-0.05, 0.27)), ((65, 66, 67), (0.0, 0.31)),
        ((48, 54), (-0.11, 0.09)), ((60, 64), (-0.10, 0.09)), ((49, 53), (-0.05, -0.02)),
        ((50, 51, 52), (0.0, -0.04)), ((61, 62, 63), (0.0, -0.05)),
    ],
    "fear": [
        ((21, 22), (-0.05, -0.13)), ((20, 23), (-0.03, -0.11)), ((19, 24), (0.0, -0.08)),
        ((18, 25), (0.0, -0.04)), ((17, 26), (0.0, -0.01)),
        (UPPER_LIDS, (0.0, -0.065)), (LOWER_LIDS, (0.0, -0.01)),
        ((48, 54), (0.12, 0.03)), ((60, 64), (0.11, 0.03)), ((49, 53), (0.06, 0.0)),
        ((55, 59), (0.07, 0.06)), ((56, 57, 58), (0.0, 0.13)), ((65, 66, 67), (0.0, 0.11)),
        ((61, 62, 63), (0.0, -0.02)), ((7, 8, 9), (0.0, 0.05)),
    ],
    "disgust": [
        ((49, 53), (0.0, -0.08)), ((50, 51, 52), (0.0, -0.10)), ((61, 62, 63), (0.0, -0.08)),
        ((48, 54), (-0.01, 0.02)), ((56, 57, 58), (0.0, -0.02)),
        ((31, 35), (0.02, -0.05)), ((32, 33, 34), (0.0, -0.045)), ((30,), (0.0, -0.03)),
        ((29,), (0.0, -0.015)),
        ((21, 22), (-0.03, 0.08)), ((20, 23), (0.0, 0.06)), ((19, 24), (0.0, 0.04)),
        ((17, 18, 25, 26), (0.0, 0.02)), (LOWER_LIDS, (0.0, -0.035)), (UPPER_LIDS, (0.0, 0.02)),
    ],
    "anger": [
        ((21, 22), (-0.09, 0.17)), ((20, 23), (-0.06, 0.14)), ((19, 24), (-0.03, 0.09)),
        ((18, 25), (0.0, 0.04)), ((17, 26), (0.0, -0.01)),
        (LOWER_LIDS, (0.0, -0.045)), (UPPER_LIDS, (0.0, 0.015)), ((31, 35), (0.03, -0.01)),
        ((50, 51, 52), (0.0, 0.02)), ((56, 57, 58), (0.0, -0.025)), ((49, 53), (-0.02, 0.01)),
        ((55, 59), (-0.02, -0.02)), ((48, 54), (-0.045, 0.02)), ((60, 64), (-0.035, 0.01)),
        ((7, 8, 9), (0.0, -0.02)),
    ],
}

# what the open mouth shows, per class (classes not listed keep the lips closed)
MOUTH_INTERIOR = {"happiness": "teeth", "surprise": "dark", "fear": "dark_teeth", "disgust": "teeth"}

# A closed, relaxed mouth (iBUG points 48..67) in IOD units, relative to the midpoint of the inner
# lips (62/66), eyes level. Measured on the neutral biden.jpg with dlib and made symmetric; every
# photo's mouth is re-shaped to this before the class displacements, so smiling photos give a
# neutral base.
NEUTRAL_MOUTH = np.array([
    (-0.45, 0.02), (-0.28, -0.035), (-0.125, -0.07), (0.0, -0.045), (0.125, -0.07), (0.28, -0.035),
    (0.45, 0.02), (0.28, 0.065), (0.127, 0.085), (0.0, 0.09), (-0.127, 0.085), (-0.28, 0.065),
    (-0.39, 0.008), (-0.12, -0.008), (0.0, 0.0), (0.12, -0.008), (0.39, 0.008),
    (0.12, -0.004), (0.0, 0.004), (-0.12, -0.004),
], dtype=np.float64)

# inner-lip pairs (upper, lower) for the mouth opening
INNER_PAIRS = ((61, 67), (62, 66), (63, 65))


def displacements(name: str, landmarks: np.ndarray, iod: float, intensity: float,
                  rng: np.random.Generator, gain_range: tuple[float, float] = (0.7, 1.3)) -> np.ndarray:
    """Pixel displacements of the 68 landmarks for expression ``name``.

    Args:
        name: canonical class name (``neutral`` gives zeros).
        landmarks: ``(68, 2)`` neutral-shape landmarks, eyes level (aligned frame).
        iod: inter-ocular distance in pixels.
        intensity: global strength (1 = the table above).
        rng: draws one gain per component from ``gain_range``.

    Returns:
        ``(68, 2) float64`` displacement in pixels.
    """
    if name not in EXPRESSIONS:
        raise ValueError(f"unknown expression {name!r}; expected one of {', '.join(CANONICAL[:7])}")
    lm = np.asarray(landmarks, np.float64)
    mid_x = 0.5 * (lm[36:42, 0].mean() + lm[42:48, 0].mean())
    out = np.zeros((68, 2))
    for idx, (outward, down) in EXPRESSIONS[name]:
        g = intensity * rng.uniform(*gain_range) * iod
        for i in idx:
            side = np.sign(lm[i, 0] - mid_x) if abs(lm[i, 0] - mid_x) > 0.05 * iod else 0.0
            out[i] += (side * outward * g, down * g)
    return out


def keep_order(landmarks: np.ndarray, iod: float) -> np.ndarray:
    """Stop displaced landmarks from crossing (a crossing folds the warp and tears the image).

    Keeps each lip at least 0.025 IOD thick, each eye at least 0.03 IOD open and the brows at
    least 0.09 IOD above the upper lids; ``(68, 2)`` landmarks are modified and returned.
    """
    lm = landmarks
    for outer, inner in ((49, 61), (50, 61), (51, 62), (52, 63), (53, 63)):
        lm[outer, 1] = min(lm[outer, 1], lm[inner, 1] - 0.025 * iod)
    for outer, inner in ((59, 67), (58, 67), (57, 66), (56, 65), (55, 65)):
        lm[outer, 1] = max(lm[outer, 1], lm[inner, 1] + 0.025 * iod)
    for up, lo in ((37, 41), (38, 40), (43, 47), (44, 46)):
        lm[lo, 1] = max(lm[lo, 1], lm[up, 1] + 0.03 * iod)
    for brow, lid in ((18, 37), (19, 37), (20, 38), (21, 38), (22, 43), (23, 43), (24, 44), (25, 44)):
        lm[brow, 1] = min(lm[brow, 1], lm[lid, 1] - 0.09 * iod)
    return lm


def mouth_opening(landmarks: np.ndarray) -> float:
    """Mean vertical gap between the inner lips, in pixels (0 for a closed mouth)."""
    return float(np.mean([landmarks[lo, 1] - landmarks[up, 1] for up, lo in INNER_PAIRS]))


def _soft_mask(shape: tuple[int, int], polys: list[np.ndarray], sigma: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for p in polys:
        cv2.fillPoly(mask, [np.round(p * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    m = mask.astype(np.float32) / 255.0
    return cv2.GaussianBlur(m, (0, 0), sigma) if sigma > 0 else m


def paint_mouth(image: np.ndarray, landmarks: np.ndarray, kind: str, sigma: float = 0.7) -> np.ndarray:
    """Paint the inside of an open mouth (between the inner-lip landmarks 60..67).

    Args:
        image: ``(H, W, 3) float32`` RGB in 0..255, modified and returned.
        landmarks: ``(68, 2)`` landmark positions in ``image`` pixels.
        kind: ``"teeth"`` (upper teeth over a dark gap), ``"dark"`` (dark oral cavity) or
            ``"dark_teeth"`` (dark cavity with a thin band of upper teeth).
        sigma: edge softness in pixels.
    """
    inner = landmarks[60:68]
    h, w = image.shape[:2]
    x0, y0 = np.floor(landmarks[48:60].min(0)).astype(int)
    x1, y1 = np.ceil(landmarks[48:60].max(0)).astype(int)
    patch = image[max(0, y0):max(1, y1), max(0, x0):max(1, x1)]
    # scale the painted colours with the local lip/skin brightness so lighting stays consistent
    level = float(np.clip(patch.mean() / 140.0, 0.35, 1.3)) if patch.size else 1.0
    cavity = _soft_mask((h, w), [inner], sigma)[..., None]
    image[:] = image * (1 - cavity) + cavity * (np.array([52.0, 18.0, 20.0]) * level)
    band = {"teeth": 0.62, "dark": 0.0, "dark_teeth": 0.3}[kind]
    if band > 0:
        upper = landmarks[[60, 61, 62, 63, 64]]
        lower = np.array([landmarks[up] + band * (landmarks[lo] - landmarks[up])
                          for up, lo in ((63, 65), (62, 66), (61, 67))])
        teeth = _soft_mask((h, w), [np.vstack([upper, lower])], sigma)[..., None]
        # teeth fall off into shadow towards the mouth corners
        xs = np.arange(w, dtype=np.float32)
        cx, half = 0.5 * (inner[0, 0] + inner[4, 0]), max(1.0, 0.5 * abs(inner[4, 0] - inner[0, 0]))
        shade = np.clip(1.0 - 0.55 * ((xs - cx) / half) ** 2, 0.3, 1.0)[None, :, None]
        # faint gaps between teeth
        gaps = 1.0 - 0.18 * (np.cos((xs - cx) / max(1.0, half / 3.2) * np.pi) > 0.93)[None, :, None]
        colour = np.array([232.0, 226.0, 208.0]) * level * shade * gaps
        image[:] = image * (1 - teeth) + teeth * colour
    return image


def tint_lips(image: np.ndarray, landmarks: np.ndarray, strength: float = 0.12, sigma: float = 0.7) -> np.ndarray:
    """Give the lips (between the outer and inner lip contours) a slightly redder, darker tone.

    The source photos' mouths are inpainted from skin and lip pixels, which pales the lips;
    this restores a plausible lip colour. ``(H, W, 3) float32`` modified in place.
    """
    h, w = image.shape[:2]
    lips = _soft_mask((h, w), [landmarks[48:60]], sigma) - _soft_mask((h, w), [landmarks[60:68]], sigma)
    lips = np.clip(lips, 0, 1)[..., None]
    image *= 1.0 - lips * strength * np.array([0.3, 1.0, 0.9], np.float32)
    return image


def lip_line(image: np.ndarray, landmarks: np.ndarray, strength: float = 0.45,
             width: float = 1.0) -> np.ndarray:
    """Darken the line where closed lips meet (inner-lip midline), ``(H, W, 3) float32`` in place."""
    mid = [landmarks[60]] + [(landmarks[u] + landmarks[lo]) / 2 for u, lo in INNER_PAIRS] + [landmarks[64]]
    return shade_lines(image, [np.array(mid)], width=width, strength=strength)


def shade_lines(image: np.ndarray, lines: list[np.ndarray], width: float, strength: float) -> np.ndarray:
    """Darken soft polylines (furrows, wrinkles, lip line) by a factor up to ``1 - strength``.

    Args:
        image: ``(H, W, 3) float32`` RGB, modified and returned.
        lines: list of ``(K, 2)`` polylines in pixels.
        width: line width in pixels (also the blur scale).
        strength: darkening at the line centre, 0..1.
    """
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    for line in lines:
        cv2.polylines(mask, [np.round(np.asarray(line) * 4).astype(np.int32)], False, 255,
                      thickness=max(1, int(round(width))), lineType=cv2.LINE_AA, shift=2)
    m = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), max(0.5, 0.6 * width))
    image *= (1.0 - strength * np.clip(m * 1.5, 0, 1))[..., None]
    return image


def furrows(name: str, landmarks: np.ndarray, iod: float, intensity: float) -> list[tuple[list, float]]:
    """Wrinkle polylines for ``name``: a list of ``(lines, strength)`` in ``landmarks``' pixels."""
    lm = landmarks
    if name == "anger":  # vertical glabella furrows between the lowered brows
        cx = 0.5 * (lm[21, 0] + lm[22, 0])
        top = min(lm[21, 1], lm[22, 1]) - 0.12 * iod
        d = 0.07 * iod
        lines = [np.array([(cx + s * d, top), (cx + s * d * 0.8, top + 0.28 * iod)]) for s in (-1, 1)]
        return [(lines, 0.3 * intensity)]
    if name == "disgust":  # short horizontal wrinkles across the top of the nose
        x, y = lm[27, 0], 0.5 * (lm[27, 1] + lm[28, 1])
        lines = [np.array([(x - 0.09 * iod, y + k * 0.08 * iod), (x, y + k * 0.08 * iod - 0.015 * iod),
                           (x + 0.09 * iod, y + k * 0.08 * iod)]) for k in (-0.5, 0.5)]
        return [(lines, 0.12 * intensity)]
    if name == "surprise":  # horizontal forehead lines above the raised brows
        top = min(lm[17:27, 1]) - 0.22 * iod
        x0, x1 = lm[19, 0], lm[24, 0]
        lines = [np.array([(x0, top - k * 0.12 * iod), (0.5 * (x0 + x1), top - k * 0.12 * iod - 0.03 * iod),
                           (x1, top - k * 0.12 * iod)]) for k in range(3)]
        return [(lines, 0.12 * intensity)]
    if name == "happiness":  # nasolabial folds from the nose wings to past the mouth corners
        lines = []
        for wing, corner in ((31, 48), (35, 54)):
            out = np.sign(lm[corner, 0] - lm[33, 0])
            p0 = lm[wing] + (out * 0.10 * iod, 0.0)
            p2 = lm[corner] + (out * 0.10 * iod, 0.10 * iod)
            lines.append(np.array([p0, 0.5 * (p0 + p2) + (out * 0.06 * iod, 0), p2]))
        return [(lines, 0.15 * intensity)]
    return []
