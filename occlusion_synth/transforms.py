"""Transform API: ``Occlude`` and ``BlockOcclude`` on numpy images (adapters in :mod:`.adapters`).

Randomness lives in one place, :meth:`Occlude.get_params`; :meth:`Occlude.apply` replays a
:class:`OcclusionParams` exactly (same bytes), also after a JSON round trip::

    occ = Occlude(templates="assets/", categories=("mask", "hand"), coverage_range=(0.2, 0.6))
    out = occ(image, landmarks, rng=np.random.default_rng(7))
    out["image"], out["mask"], out["params"].to_dict()
    group = occ(image, faces=[face.landmarks for face in faces], rng=7)   # every face

Images are ``(H, W, 3) uint8 RGB`` (``(H, W)`` and ``(H, W, 1)`` grey images come back in
their own shape); landmarks are ``(68, 2)`` float pixels (or a ``Face``).
"""
from __future__ import annotations

import os
import pickle
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import functional as F
from . import placement as P
from .errors import OcclusionSynthError, PlacementError, TemplateError

TEMPLATE_CATEGORIES = ("food", "hand", "drink", "mask")
CATEGORIES = TEMPLATE_CATEGORIES + ("block",)
DEFAULT_COVERAGE = (0.01, 0.9)
SHADOW_STRENGTH = 0.35
SHADOW_CATEGORIES = ("hand", "food", "drink")
# harmonisation steps (functional.harmonise), all on by default
HARMONISE_STEPS = ("light", "colour", "grey", "blur", "grain")
HAND_TONES = ("face", "template")


@dataclass
class OcclusionParams:
    """Everything needed to replay one occlusion (JSON-serialisable through :meth:`to_dict`).

    Attributes:
        category: ``food``, ``hand``, ``drink``, ``mask``, ``block`` or ``none`` (not applied).
        template: template name (``"category/stem"``), block kind, or ``""``.
        region: region used (``""`` when not applied).
        occluded_fraction: fraction of the face region covered by the mask.
        image_shape: ``[H, W]`` the params were drawn for.
        placement: :class:`~occlusion_synth.placement.Placement` fields (template occluders).
        block: :class:`~occlusion_synth.placement.BlockPlacement` fields (blocks).
        harmonise: the harmonisation steps applied (``{"light": True, ..., "skin": bool,
            "noise_seed": int}``; blocks only ``{"grey": bool}``) or None (off). The photo's
            statistics are re-read from the image on every apply.
        shadow: ``{"offset": [dx, dy], "sigma": s, "strength": k}`` or None.
        face_polygon: the face region polygon (harmonisation context).
        skin_polygons: cheek polygons the hand's skin tone is sampled from, or None.
        inside_fraction: fraction of the occluder's footprint inside the face region.
    """

    category: str
    template: str = ""
    region: str = ""
    occluded_fraction: float = 0.0
    image_shape: list = field(default_factory=list)
    placement: Optional[dict] = None
    block: Optional[dict] = None
    harmonise: Optional[dict] = None
    shadow: Optional[dict] = None
    face_polygon: Optional[list] = None
    skin_polygons: Optional[list] = None
    inside_fraction: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "OcclusionParams":
        data = dict(data)
        data.pop("harmonize", None)  # written by versions before harmonise (not replayable anyway)
        return cls(**data)


def _fields(obj) -> dict:
    """A dataclass's fields as a new dict, values shared (``asdict`` deep-copies every nested list:
    ~0.3 ms for a thin-plate placement, on every draw)."""
    return dict(obj.__dict__)


def _frozen(value) -> bytes:
    """A snapshot of nested dicts/lists of plain values, as bytes (the render cache's key: a deep
    copy in C, compared in one step; a later change of the dict gives other bytes)."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _coverage(footprint: np.ndarray, face: np.ndarray, face_total: int, box) -> tuple[float, float]:
    """``(occluded fraction, inside fraction)`` of a footprint patch at ``box`` (both 0/255 uint8),
    as :func:`~occlusion_synth.functional.occluded_fraction` and
    :func:`~occlusion_synth.functional.inside_fraction`, counted on the patch's box only."""
    total = int(np.count_nonzero(footprint))
    if face_total == 0 or total == 0:
        return 0.0, 0.0
    x0, y0, x1, y1 = box
    both = int(np.count_nonzero(footprint & face[y0:y1, x0:x1]))
    return both / face_total, both / total


def _as_landmarks(landmarks) -> np.ndarray:
    lm = getattr(landmarks, "landmarks", landmarks)
    lm = np.asarray(lm, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2) iBUG-68 points, got shape {lm.shape}")
    return lm


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)``, ``(H, W)`` or ``(H, W, 1)`` uint8 -> ``(H, W, 3)`` uint8 (a view when RGB)."""
    ok = isinstance(image, np.ndarray) and image.dtype == np.uint8 and (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3)))
    if not ok:
        raise ValueError("image must be an (H, W, 3) uint8 RGB numpy array (or (H, W) / (H, W, 1) "
                         f"grey), got {type(image).__name__} {getattr(image, 'shape', '')} "
                         f"{getattr(image, 'dtype', '')}")
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    grey = image if image.ndim == 2 else image[..., 0]
    return np.repeat(grey[..., None], 3, axis=2)


def _like_input(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Give ``out`` (H, W, 3) the shape of the caller's ``image`` (grey inputs get luma back)."""
    if image.ndim == 3 and image.shape[2] == 3:
        return out
    grey = out[..., 0] if (out == out[..., :1]).all() else np.clip(np.rint(F.luma(out)), 0, 255).astype(np.uint8)
    return grey if image.ndim == 2 else grey[..., None]


def _as_generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _load_library(templates):
    from .templates import TemplateLibrary, load_templates

    if templates is None:
        return load_templates()
    if isinstance(templates, TemplateLibrary):
        return templates
    if isinstance(templates, (str, os.PathLike)):
        return load_templates(templates)
    return TemplateLibrary(list(templates))


def _harmonise_steps(harmonize) -> dict:
    if isinstance(harmonize, dict):
        bad = sorted(set(harmonize) - set(HARMONISE_STEPS))
        if bad:
            raise ValueError(f"harmonize keys must be among {HARMONISE_STEPS}, got {bad}")
        return {k: bool(harmonize.get(k, True)) for k in HARMONISE_STEPS}
    if isinstance(harmonize, (bool, int, float)) or harmonize is None:
        return {k: bool(harmonize) for k in HARMONISE_STEPS}
    raise ValueError(f"harmonize must be True, False or a dict of {HARMONISE_STEPS} flags, got {harmonize!r}")


class Occlude:
    """Paste a random realistic occluder (food, hand, drink, face mask) or a geometric block.

    Args:
        templates: a template folder, a ``TemplateLibrary``, a list of ``Template`` or None
            (the shipped ``assets/``; only loaded when a template category is requested).
        categories: categories to draw from (uniformly, among those with templates).
        region: ``auto`` (category default), ``mouth``, ``eyes``, ``nose``, ``cheek``, ``chin``
            or ``random`` (see :mod:`occlusion_synth.placement`); for blocks ``eyes``/``mouth``
            force the eye/mouth block.
        coverage_range: ``(lo, hi)`` accepted range of the occluded fraction of the face region
            (:mod:`occlusion_synth.functional.masks`); placements outside it are redrawn, and so
            are placements with less than ``placement.MIN_INSIDE`` of their footprint on the face.
            (``coverage=`` is its deprecated old name.)
        scale_range: occluder width / yaw-corrected inter-ocular distance; overrides every template's.
        rotation_jitter: degrees of jitter around the face roll.
        harmonize: the occluder takes the photo's light, colour cast, grey, blur and grain
            (:mod:`occlusion_synth.functional.harmonise`): True (default), False, or a dict
            switching single steps (``{"grain": False}``).
        hand_tone: ``face`` (default: hands take the person's skin tone, sampled from the cheeks)
            or ``template`` (keep the template's); needs ``harmonize``.
        shadow: soft contact shadow under hands, food and drinks (off by default; the shadow is
            part of the mask).
        block_kinds: block kinds for the ``block`` category.
        block_fill: block fill(s): ``grey``, ``noise``, ``colour``.
        p: probability of occluding at all.
        max_tries: placements drawn before giving up with ``PlacementError``.
    """

    def __init__(self, templates=None, categories: Sequence[str] = CATEGORIES, region: str = "auto",
                 coverage_range: tuple[float, float] = DEFAULT_COVERAGE,
                 scale_range: Optional[tuple[float, float]] = None,
                 rotation_jitter: float = P.DEFAULT_ROTATION_JITTER,
                 harmonize: Union[bool, dict] = True, hand_tone: str = "face", shadow: bool = False,
                 block_kinds: Sequence[str] = F.BLOCK_KINDS,
                 block_fill: Union[str, Sequence[str]] = ("grey", "noise", "colour"),
                 p: float = 1.0, max_tries: int = 50, *, coverage: Optional[tuple[float, float]] = None):
        if coverage is not None:
            import warnings

            warnings.warn("Occlude(coverage=...) is deprecated; use coverage_range=", DeprecationWarning,
                          stacklevel=2)
            coverage_range = coverage
        categories = (categories,) if isinstance(categories, str) else tuple(categories)
        bad = [c for c in categories if c not in CATEGORIES]
        if bad or not categories:
            raise ValueError(f"categories must be a non-empty subset of {CATEGORIES}, got {categories}")
        if region not in P.REGIONS:
            raise ValueError(f"region must be one of {P.REGIONS}, got {region!r}")
        lo, hi = (float(v) for v in coverage_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"coverage_range must be (lo, hi) with 0 <= lo <= hi <= 1, got {coverage_range}")
        bad = [k for k in block_kinds if k not in F.BLOCK_KINDS]
        if bad or not block_kinds:
            raise ValueError(f"block_kinds must be a non-empty subset of {F.BLOCK_KINDS}, got {block_kinds}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if hand_tone not in HAND_TONES:
            raise ValueError(f"hand_tone must be one of {HAND_TONES}, got {hand_tone!r}")
        self.region, self.coverage_range = region, (lo, hi)
        self.scale_range = None if scale_range is None else tuple(float(v) for v in scale_range)
        self.rotation_jitter = float(rotation_jitter)
        self.harmonize = _harmonise_steps(harmonize)
        self.hand_tone = hand_tone
        self.shadow, self.p, self.max_tries = bool(shadow), float(p), int(max_tries)
        self.block_kinds = tuple(block_kinds)
        self.block_fill = (block_fill,) if isinstance(block_fill, str) else tuple(block_fill)
        self.library = None
        if any(c in TEMPLATE_CATEGORIES for c in categories):
            self.library = _load_library(templates)
        self.categories = tuple(c for c in categories if c == "block" or self.library.by_category(c))
        if not self.categories:
            raise TemplateError(f"the template library ({len(self.library)} templates, categories "
                                f"{self.library.categories()}) has none of the requested categories {categories}")

    # ------------------------------------------------------------------ drawing
    def _draw_once(self, image_shape, lm, rng, geo):
        category = self.categories[int(rng.integers(len(self.categories)))]
        if category == "block":
            kinds = self.block_kinds
            if self.region in ("eyes", "mouth") and self.region in kinds:
                kinds = (self.region,)
            kind = kinds[int(rng.integers(len(kinds)))]
            block = P.draw_block(kind, lm, image_shape, rng, self.block_fill, geo=geo)
            x0, y0, x1, y1 = block.rect
            mask = np.full((y1 - y0, x1 - x0), 255, np.uint8)
            return category, kind, kind, None, _fields(block), mask, (x0, y0, x1, y1)
        pool = self.library.by_category(category)
        template = pool[int(rng.integers(len(pool)))]
        plc = P.draw_placement(template, lm, self.region, rng, self.scale_range, self.rotation_jitter, geo=geo)
        rendered = P.render(template, plc, image_shape)
        placement = _fields(plc)
        # apply() right after get_params() (as in __call__) reuses this render instead of redoing it
        self._last_render = (_frozen(placement), tuple(image_shape), rendered)
        if rendered is None:
            return category, template.name, plc.region, placement, None, None, None
        _, alpha, box = rendered
        return category, template.name, plc.region, placement, None, F.footprint_mask(alpha), box

    def _harmonise_params(self, category: str, rng: np.random.Generator) -> Optional[dict]:
        if not any(self.harmonize.values()):
            return None
        if category == "block":
            return {"grey": self.harmonize["grey"]}
        skin = category == "hand" and self.hand_tone == "face"
        return {**self.harmonize, "skin": skin, "noise_seed": int(rng.integers(0, 2**31 - 1))}

    def _shadow_params(self, category: str, geo: dict, rng: np.random.Generator) -> Optional[dict]:
        if not self.shadow or category not in SHADOW_CATEGORIES:
            return None
        iod = geo["iod"]
        ang = rng.uniform(np.pi / 4, 3 * np.pi / 4)  # light from above: the shadow falls down
        dist = rng.uniform(0.03, 0.08) * iod
        return {"offset": [float(np.cos(ang) * dist), float(np.sin(ang) * dist)],
                "sigma": float(0.06 * iod), "strength": SHADOW_STRENGTH}

    def get_params(self, image: np.ndarray, landmarks, rng=None) -> OcclusionParams:
        """Draw one occlusion for ``image`` (only its shape is used) and its ``landmarks``.

        Raises:
            PlacementError: no draw met ``coverage_range`` (and the on-face rule) within ``max_tries``.
        """
        rng = _as_generator(rng)
        lm = _as_landmarks(landmarks)
        shape = tuple(int(s) for s in image.shape[:2])
        if rng.random() >= self.p:
            return OcclusionParams(category="none", image_shape=list(shape))
        polygon = F.face_region_polygon(lm)
        face = F.polygon_mask(polygon, shape)  # == F.face_region_mask(lm, shape)
        face_total = int(np.count_nonzero(face))
        geo = P.face_geometry(lm, polygon)  # once per face, not per attempt
        lo, hi = self.coverage_range
        seen, off_face = [], 0
        for _ in range(self.max_tries):
            category, name, region, plc, block, mask, box = self._draw_once(shape, lm, rng, geo)
            frac, inside = (0.0, 0.0) if mask is None else _coverage(mask, face, face_total, box)
            seen.append(frac)
            if not (frac > 0.0 and lo <= frac <= hi):
                continue
            need = P.MIN_INSIDE.get(category, 0.0)
            if inside < need and frac < need:  # neither mostly on the face nor covering most of it
                off_face += 1
                continue
            skin = F.skin_polygons(lm) if category == "hand" and self.hand_tone == "face" else None
            return OcclusionParams(category=category, template=name, region=region,
                                   occluded_fraction=float(frac), image_shape=list(shape),
                                   placement=plc, block=block,
                                   harmonise=self._harmonise_params(category, rng),
                                   shadow=self._shadow_params(category, geo, rng),
                                   face_polygon=polygon.tolist(), skin_polygons=skin,
                                   inside_fraction=float(inside))
        raise PlacementError(
            f"could not place an occluder from categories {list(self.categories)} with occluded "
            f"fraction in [{lo:g}, {hi:g}] after {self.max_tries} tries (fractions drawn: "
            f"{min(seen):.3f}..{max(seen):.3f}; {off_face} in range but off the face); widen "
            "coverage_range or scale_range, or add templates")

    # ------------------------------------------------------------------ applying
    def _apply_block(self, image: np.ndarray, params: OcclusionParams):
        b = params.block
        out, mask = F.fill_block(image, b["rect"], b["fill"], b["colour"], b["noise_seed"])
        if params.harmonise and params.harmonise.get("grey") and params.face_polygon:
            face = F.polygon_mask(params.face_polygon, image.shape[:2]) > 0
            if F.is_grey(image[face]):
                x0, y0, x1, y1 = b["rect"]
                grey = np.clip(np.rint(F.luma(out[y0:y1, x0:x1])), 0, 255).astype(np.uint8)
                out[y0:y1, x0:x1] = grey[..., None]
        return out, mask

    def apply(self, image: np.ndarray, params: Union[OcclusionParams, dict]):
        """Apply recorded params.

        Returns:
            ``(image, mask)``: the occluded image in the input's shape (``(H, W, 3)`` uint8) and
            the honest ``(H, W) uint8`` 0/255 mask: every pixel that changed is 255.
        """
        original = image
        image = _as_rgb(image)
        if isinstance(params, dict):
            params = OcclusionParams.from_dict(params)
        if params.image_shape and list(image.shape[:2]) != list(params.image_shape):
            raise OcclusionSynthError(f"occlusion params were drawn for a {params.image_shape} image, "
                                      f"got {list(image.shape[:2])}")
        out, mask = self._apply_rgb(image, params)
        return _like_input(out, original), mask

    def _apply_rgb(self, image: np.ndarray, params: OcclusionParams):
        if params.category == "none":
            return image.copy(), np.zeros(image.shape[:2], np.uint8)
        if params.category == "block":
            return self._apply_block(image, params)
        if self.library is None or params.template not in self.library:
            raise OcclusionSynthError(f"template {params.template!r} is not in this Occlude's library; "
                                      "replay with the library the params were drawn with")
        template = self.library.get(params.template)
        cached = getattr(self, "_last_render", None)
        if cached is not None and cached[1] == image.shape[:2] and cached[0] == _frozen(params.placement):
            rendered = cached[2]
        else:
            rendered = P.render(template, P.Placement(**params.placement), image.shape[:2])
        if rendered is None:
            return image.copy(), np.zeros(image.shape[:2], np.uint8)
        rgb, alpha, box = rendered
        h = params.harmonise
        if h:
            face = F.polygon_mask(params.face_polygon, image.shape[:2]) if params.face_polygon else None
            skin = None
            if h.get("skin") and params.skin_polygons:
                skin = np.zeros(image.shape[:2], np.uint8)
                for poly in params.skin_polygons:
                    skin |= F.polygon_mask(poly, image.shape[:2])
            stats = F.measure_scene(image, box, face, skin, alpha)
            rgb, alpha, box = F.harmonise_occluder(
                rgb, alpha, box, image, stats, face, light=h.get("light", False),
                colour=h.get("colour", False), grey=h.get("grey", False), skin=h.get("skin", False),
                blur=h.get("blur", False), grain=h.get("grain", False), noise_seed=h.get("noise_seed", 0))
        shadow = None
        if params.shadow:
            s = params.shadow
            shadow = F.shadow_alpha(alpha, box, image.shape[:2], s["offset"], s["sigma"], s["strength"])
        out = F.composite(image, rgb, alpha, box, shadow)
        mask = np.zeros(image.shape[:2], np.uint8)
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = F.footprint_mask(alpha)
        if shadow is not None:
            shade, (sx0, sy0, sx1, sy1) = shadow
            mask[sy0:sy1, sx0:sx1][shade > 0] = 255
        return out, mask

    def __call__(self, image: np.ndarray, landmarks=None, rng=None, *, faces=None) -> dict:
        """Draw and apply.

        Args:
            image: ``(H, W, 3) uint8`` RGB (or ``(H, W)`` / ``(H, W, 1)`` grey).
            landmarks: ``(68, 2)`` landmarks (or a ``Face``) of the face to occlude.
            rng: ``numpy.random.Generator`` or seed.
            faces: instead of ``landmarks``, a list of faces (landmarks or ``Face``): every one
                gets its own occluder, see :meth:`occlude_faces`.

        Returns:
            ``dict(image, mask, params)``; ``params`` is an :class:`OcclusionParams`, or with
            ``faces`` a list of them (one per face) and ``occluded`` the number of faces occluded.
        """
        if faces is not None:
            if landmarks is not None:
                raise ValueError("pass either landmarks or faces, not both")
            return self.occlude_faces(image, faces, rng)
        if landmarks is None:
            raise ValueError("landmarks (or faces=[...]) are required")
        rgb = _as_rgb(image)
        params = self.get_params(rgb, landmarks, rng)
        out, mask = self._apply_rgb(rgb, params)
        self._final_fraction(params, mask, landmarks)
        return {"image": _like_input(out, image), "mask": mask, "params": params}

    @staticmethod
    def _final_fraction(params: OcclusionParams, mask: np.ndarray, landmarks) -> None:
        # the blur of harmonisation may grow the footprint a little: record the saved mask's fraction
        if params.category not in ("none", "block"):
            face = F.polygon_mask(params.face_polygon, mask.shape) if params.face_polygon else \
                F.face_region_mask(_as_landmarks(landmarks), mask.shape)
            params.occluded_fraction = float(F.occluded_fraction(mask, face))

    def occlude_faces(self, image: np.ndarray, faces: Sequence, rng=None, *,
                      timing: Optional[dict] = None) -> dict:
        """Occlude every face of ``faces`` (each its own draw, in the order given).

        A face where no placement fits gets category ``none`` (the others are still occluded);
        the image is returned unchanged with an empty mask when ``faces`` is empty. This is
        :func:`occlude_faces` with this occluder (``occsynth generate`` uses the same function).

        Args:
            rng: one ``Generator`` or seed for all faces, or a list with one per face.
            timing: optional dict; seconds spent drawing (``placement``) and applying
                (``composite``) are added to it.

        Returns:
            ``dict(image, mask, params, occluded, failures)``: the combined image, the union of
            the masks, one :class:`OcclusionParams` per face, how many faces were occluded, and
            per face the ``PlacementError`` message (None where it was occluded).
        """
        return occlude_faces(self, image, faces, rng, timing=timing)

    def apply_faces(self, image: np.ndarray, params: Sequence):
        """Replay :meth:`occlude_faces`: ``(image, union mask)`` from its list of params."""
        rgb = _as_rgb(image)
        out, union = rgb.copy(), np.zeros(rgb.shape[:2], np.uint8)
        for prm in params:
            prm = OcclusionParams.from_dict(prm) if isinstance(prm, dict) else prm
            out, mask = self._apply_rgb(out, prm)
            union |= mask
        return _like_input(out, image), union

    def as_torchvision(self, landmarks: Union[str, Callable] = "auto", **kwargs):
        """This occluder as a ``torchvision.transforms.v2.Transform`` (see
        :class:`occlusion_synth.adapters.OccludeTorchvision`)."""
        from .adapters.tv import OccludeTorchvision

        return OccludeTorchvision(self, landmarks=landmarks, **kwargs)

    def as_albumentations(self, landmarks: Union[str, Callable] = "auto", p: float = 1.0, **kwargs):
        """This occluder as an albumentations transform (see
        :func:`occlusion_synth.adapters.albumentations_transform`)."""
        from .adapters import albumentations_transform

        return albumentations_transform(self, landmarks=landmarks, p=p, **kwargs)


def occlude_faces(occluder, image: np.ndarray, faces: Sequence, rng=None, *,
                  timing: Optional[dict] = None) -> dict:
    """Occlude every face with ``occluder`` (an :class:`Occlude`, or anything with its
    ``get_params``/``apply``): each face is drawn on the image as occluded so far, then applied.

    Args:
        occluder: the occluder.
        image: ``(H, W, 3) uint8`` RGB (or grey, see :class:`Occlude`).
        faces: landmarks (``(68, 2)``) or ``Face`` objects, in drawing order.
        rng: one ``Generator`` or seed shared by all faces (drawn in order), or a sequence with
            one per face (``occsynth generate`` gives face ``j`` of a pair its own
            ``face_seed(seed, j)``, so the largest face gets the same occluder with
            ``--faces all`` as with ``largest``).
        timing: optional dict; ``placement`` and ``composite`` seconds are added to it.

    Returns:
        ``dict(image, mask, params, occluded, failures)`` (see :meth:`Occlude.occlude_faces`).
    """
    import time

    faces = list(faces)
    if isinstance(rng, (list, tuple)):
        if len(rng) != len(faces):
            raise ValueError(f"rng: got {len(rng)} generators for {len(faces)} faces")
        rngs = [_as_generator(r) for r in rng]
    else:
        rngs = [_as_generator(rng)] * len(faces)
    rgb = _as_rgb(image)
    out, union, plist, failures = rgb, None, [], []
    clock = time.perf_counter
    for lm, face_rng in zip(faces, rngs):
        t0 = clock()
        try:
            params = occluder.get_params(out, lm, face_rng)
        except PlacementError as exc:
            params = OcclusionParams(category="none", image_shape=list(rgb.shape[:2]))
            failures.append(str(exc))
        else:
            failures.append(None)
        t1 = clock()
        if params.category == "none":
            mask = None
        else:
            out, mask = occluder.apply(out, params)
            if isinstance(params, OcclusionParams):
                Occlude._final_fraction(params, mask, lm)
            union = mask if union is None else np.maximum(union, mask)
        if timing is not None:
            timing["placement"] = timing.get("placement", 0.0) + (t1 - t0)
            timing["composite"] = timing.get("composite", 0.0) + (clock() - t1)
        plist.append(params)
    if union is None:
        union = np.zeros(rgb.shape[:2], np.uint8)
    out = out.copy() if out is rgb else out
    occluded = sum(getattr(p, "category", "") != "none" for p in plist)
    return {"image": _like_input(out, image), "mask": union, "params": plist, "occluded": occluded,
            "failures": failures}


class BlockOcclude(Occlude):
    """The paper's geometric occlusions: ``kind`` ``r8``/``r16``/``r24`` (random squares of side
    8/16/24 at 48 px, scaled to the image), ``eyes``, ``mouth`` or ``random`` (any of these),
    filled ``grey``, ``noise`` or ``colour``. The coverage range is not enforced by default."""

    def __init__(self, kind: str = "r16", fill: Union[str, Sequence[str]] = "grey", p: float = 1.0,
                 coverage_range: tuple[float, float] = (0.0, 1.0), max_tries: int = 50):
        kinds = F.BLOCK_KINDS if kind == "random" else (kind,)
        if kind != "random" and kind not in F.BLOCK_KINDS:
            raise ValueError(f"kind must be one of {F.BLOCK_KINDS + ('random',)}, got {kind!r}")
        super().__init__(templates=None, categories=("block",), coverage_range=coverage_range, block_kinds=kinds,
                         block_fill=fill, p=p, max_tries=max_tries)
