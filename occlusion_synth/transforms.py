"""Transform API: ``Occlude`` and ``BlockOcclude`` (numpy), plus torchvision/albumentations adapters.

Randomness lives in one place, :meth:`Occlude.get_params`; :meth:`Occlude.apply` replays a
:class:`OcclusionParams` exactly (same bytes), also after a JSON round trip::

    occ = Occlude(templates="assets/", categories=("mask", "hand"), coverage=(0.2, 0.6))
    out = occ(image, landmarks, rng=np.random.default_rng(7))
    out["image"], out["mask"], out["params"].to_dict()

Images are ``(H, W, 3) uint8 RGB``; landmarks are ``(68, 2)`` float pixels (or a ``Face``).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import functional as F
from . import placement as P
from .errors import OcclusionSynthError, PlacementError, TemplateError

TEMPLATE_CATEGORIES = ("food", "hand", "drink", "mask")
CATEGORIES = TEMPLATE_CATEGORIES + ("block",)
DEFAULT_COVERAGE = (0.01, 0.9)
SHADOW_STRENGTH = 0.35
# luminance gap closed by harmonize=True: enough to dim a white mask in a dim photo, not grey it
HARMONIZE_STRENGTH = 0.3


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
        harmonize: harmonisation strength (0 = off).
        shadow: ``{"offset": [dx, dy], "sigma": s, "strength": k}`` or None.
        face_polygon: the face region polygon (for harmonisation statistics on replay).
    """

    category: str
    template: str = ""
    region: str = ""
    occluded_fraction: float = 0.0
    image_shape: list = field(default_factory=list)
    placement: Optional[dict] = None
    block: Optional[dict] = None
    harmonize: float = 0.0
    shadow: Optional[dict] = None
    face_polygon: Optional[list] = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "OcclusionParams":
        return cls(**data)


def _as_landmarks(landmarks) -> np.ndarray:
    lm = getattr(landmarks, "landmarks", landmarks)
    lm = np.asarray(lm, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2) iBUG-68 points, got shape {lm.shape}")
    return lm


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("image must be an (H, W, 3) uint8 RGB numpy array, got "
                         f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}")


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


class Occlude:
    """Paste a random realistic occluder (food, hand, drink, face mask) or a geometric block.

    Args:
        templates: a template folder, a ``TemplateLibrary``, a list of ``Template`` or None
            (the shipped ``assets/``; only loaded when a template category is requested).
        categories: categories to draw from (uniformly, among those with templates).
        region: ``auto`` (category default), ``mouth``, ``eyes``, ``nose``, ``cheek``, ``chin``
            or ``random`` (see :mod:`occlusion_synth.placement`); for blocks ``eyes``/``mouth``
            force the eye/mouth block.
        coverage: ``(lo, hi)`` accepted range of the occluded fraction of the face region
            (:mod:`occlusion_synth.functional.masks`); placements outside it are redrawn.
        scale_range: occluder width / inter-ocular distance; overrides every template's.
        rotation_jitter: degrees of jitter around the face roll.
        harmonize: colour/lighting harmonisation (True = ``HARMONIZE_STRENGTH`` 0.3, a float sets it).
        shadow: draw a soft drop shadow (then pixels under the shadow change too).
        block_kinds: block kinds for the ``block`` category.
        block_fill: block fill(s): ``grey``, ``noise``, ``colour``.
        p: probability of occluding at all.
        max_tries: placements drawn before giving up with ``PlacementError``.
    """

    def __init__(self, templates=None, categories: Sequence[str] = CATEGORIES, region: str = "auto",
                 coverage: tuple[float, float] = DEFAULT_COVERAGE,
                 scale_range: Optional[tuple[float, float]] = None,
                 rotation_jitter: float = P.DEFAULT_ROTATION_JITTER,
                 harmonize: Union[bool, float] = True, shadow: bool = False,
                 block_kinds: Sequence[str] = F.BLOCK_KINDS,
                 block_fill: Union[str, Sequence[str]] = ("grey", "noise", "colour"),
                 p: float = 1.0, max_tries: int = 50):
        categories = (categories,) if isinstance(categories, str) else tuple(categories)
        bad = [c for c in categories if c not in CATEGORIES]
        if bad or not categories:
            raise ValueError(f"categories must be a non-empty subset of {CATEGORIES}, got {categories}")
        if region not in P.REGIONS:
            raise ValueError(f"region must be one of {P.REGIONS}, got {region!r}")
        lo, hi = (float(v) for v in coverage)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"coverage must be (lo, hi) with 0 <= lo <= hi <= 1, got {coverage}")
        bad = [k for k in block_kinds if k not in F.BLOCK_KINDS]
        if bad or not block_kinds:
            raise ValueError(f"block_kinds must be a non-empty subset of {F.BLOCK_KINDS}, got {block_kinds}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.region, self.coverage = region, (lo, hi)
        self.scale_range = None if scale_range is None else tuple(float(v) for v in scale_range)
        self.rotation_jitter = float(rotation_jitter)
        self.harmonize = HARMONIZE_STRENGTH if harmonize is True else float(harmonize or 0.0)
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
    def _draw_once(self, image_shape, lm, rng):
        category = self.categories[int(rng.integers(len(self.categories)))]
        if category == "block":
            kinds = self.block_kinds
            if self.region in ("eyes", "mouth") and self.region in kinds:
                kinds = (self.region,)
            kind = kinds[int(rng.integers(len(kinds)))]
            block = P.draw_block(kind, lm, image_shape, rng, self.block_fill)
            x0, y0, x1, y1 = block.rect
            mask = np.full((y1 - y0, x1 - x0), 255, np.uint8)
            return category, kind, kind, None, asdict(block), mask, (x0, y0, x1, y1)
        pool = self.library.by_category(category)
        template = pool[int(rng.integers(len(pool)))]
        plc = P.draw_placement(template, lm, self.region, rng, self.scale_range, self.rotation_jitter)
        rendered = P.render(template, plc, image_shape)
        # apply() right after get_params() (as in __call__) reuses this render instead of redoing it
        self._last_render = (asdict(plc), tuple(image_shape), rendered)
        if rendered is None:
            return category, template.name, plc.region, asdict(plc), None, None, None
        _, alpha, box = rendered
        return category, template.name, plc.region, asdict(plc), None, F.alpha_to_mask(alpha), box

    def get_params(self, image: np.ndarray, landmarks, rng=None) -> OcclusionParams:
        """Draw one occlusion for ``image`` (only its shape is used) and its ``landmarks``.

        Raises:
            PlacementError: no draw met ``coverage`` within ``max_tries``.
        """
        rng = _as_generator(rng)
        lm = _as_landmarks(landmarks)
        shape = tuple(int(s) for s in image.shape[:2])
        if rng.random() >= self.p:
            return OcclusionParams(category="none", image_shape=list(shape))
        face = F.face_region_mask(lm, shape)
        poly = F.face_region_polygon(lm).tolist()
        lo, hi = self.coverage
        seen = []
        for _ in range(self.max_tries):
            category, name, region, plc, block, mask, box = self._draw_once(shape, lm, rng)
            frac = 0.0 if mask is None else F.occluded_fraction(mask, face, box)
            seen.append(frac)
            if frac > 0.0 and lo <= frac <= hi:
                shadow = None
                if self.shadow and category != "block":
                    iod = P.face_geometry(lm)["iod"]
                    ang = rng.uniform(np.pi / 4, 3 * np.pi / 4)  # light from above: shadow falls down
                    dist = rng.uniform(0.03, 0.08) * iod
                    shadow = {"offset": [float(np.cos(ang) * dist), float(np.sin(ang) * dist)],
                              "sigma": float(0.06 * iod), "strength": SHADOW_STRENGTH}
                return OcclusionParams(category=category, template=name, region=region,
                                       occluded_fraction=float(frac), image_shape=list(shape),
                                       placement=plc, block=block,
                                       harmonize=self.harmonize if category != "block" else 0.0,
                                       shadow=shadow, face_polygon=poly)
        raise PlacementError(
            f"could not place an occluder from categories {list(self.categories)} with occluded "
            f"fraction in [{lo:g}, {hi:g}] after {self.max_tries} tries (fractions drawn: "
            f"{min(seen):.3f}..{max(seen):.3f}); widen coverage or scale_range, or add templates")

    # ------------------------------------------------------------------ applying
    def apply(self, image: np.ndarray, params: Union[OcclusionParams, dict]):
        """Apply recorded params. Returns ``(image (H, W, 3) uint8, mask (H, W) uint8 0/255)``."""
        _check_image(image)
        if isinstance(params, dict):
            params = OcclusionParams.from_dict(params)
        if params.image_shape and list(image.shape[:2]) != list(params.image_shape):
            raise OcclusionSynthError(f"occlusion params were drawn for a {params.image_shape} image, "
                                      f"got {list(image.shape[:2])}")
        if params.category == "none":
            return image.copy(), np.zeros(image.shape[:2], np.uint8)
        if params.category == "block":
            b = params.block
            return F.fill_block(image, b["rect"], b["fill"], b["colour"], b["noise_seed"])
        if self.library is None or params.template not in self.library:
            raise OcclusionSynthError(f"template {params.template!r} is not in this Occlude's library; "
                                      "replay with the library the params were drawn with")
        template = self.library.get(params.template)
        cached = getattr(self, "_last_render", None)
        if cached is not None and cached[0] == params.placement and cached[1] == image.shape[:2]:
            rendered = cached[2]
        else:
            rendered = P.render(template, P.Placement(**params.placement), image.shape[:2])
        if rendered is None:
            return image.copy(), np.zeros(image.shape[:2], np.uint8)
        rgb, alpha, box = rendered
        x0, y0, x1, y1 = box
        if params.harmonize > 0:
            region = None
            if params.face_polygon:
                region = F.polygon_mask(params.face_polygon, image.shape[:2])[y0:y1, x0:x1]
            rgb = F.harmonize(rgb, alpha, image[y0:y1, x0:x1], strength=params.harmonize, region=region)
        shadow = None
        if params.shadow:
            s = params.shadow
            shadow = F.shadow_alpha(alpha, box, image.shape[:2], s["offset"], s["sigma"], s["strength"])
        out = F.composite(image, rgb, alpha, box, shadow)
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[y0:y1, x0:x1] = F.alpha_to_mask(alpha)
        return out, mask

    def __call__(self, image: np.ndarray, landmarks, rng=None) -> dict:
        """Draw and apply: ``dict(image=(H, W, 3) uint8, mask=(H, W) uint8 0/255, params=OcclusionParams)``."""
        _check_image(image)
        params = self.get_params(image, landmarks, rng)
        out, mask = self.apply(image, params)
        return {"image": out, "mask": mask, "params": params}

    def as_torchvision(self, landmarks: Union[str, Callable] = "aligned", **kwargs) -> "OccludeTorchvision":
        """Wrap for ``torchvision.transforms.v2.Compose`` (see :class:`OccludeTorchvision`)."""
        return OccludeTorchvision(self, landmarks=landmarks, **kwargs)

    def as_albumentations(self, landmarks: Union[str, Callable] = "aligned", p: float = 1.0):
        """An albumentations ``ImageOnlyTransform`` (requires ``pip install albumentations``).

        UNTESTED in this project's environment (albumentations is not installed there). The
        occlusion mask is returned under the ``occlusion_mask`` key of the result dict.
        """
        try:
            import albumentations as A
        except ImportError:
            raise ImportError("Occlude.as_albumentations() needs the optional package albumentations "
                              "(pip install albumentations); use as_torchvision() or call Occlude "
                              "directly otherwise") from None
        occ, find = self, _LandmarkFinder(landmarks)

        class _AlbumentationsOcclude(A.ImageOnlyTransform):
            def __init__(self):
                super().__init__(p=p)

            def __call__(self, *args, force_apply=False, **data):
                data = dict(data)
                if np.random.random() >= self.p and not force_apply:
                    data["occlusion_mask"] = np.zeros(data["image"].shape[:2], np.uint8)
                    return data
                res = occ(data["image"], find(data["image"]), np.random.default_rng(np.random.randint(2**31)))
                data["image"], data["occlusion_mask"] = res["image"], res["mask"]
                return data

        return _AlbumentationsOcclude()


class BlockOcclude(Occlude):
    """The paper's geometric occlusions: ``kind`` ``r8``/``r16``/``r24`` (random squares of side
    8/16/24 at 48 px, scaled to the image), ``eyes``, ``mouth`` or ``random`` (any of these),
    filled ``grey``, ``noise`` or ``colour``. The coverage range is not enforced by default."""

    def __init__(self, kind: str = "r16", fill: Union[str, Sequence[str]] = "grey", p: float = 1.0,
                 coverage: tuple[float, float] = (0.0, 1.0), max_tries: int = 50):
        kinds = F.BLOCK_KINDS if kind == "random" else (kind,)
        if kind != "random" and kind not in F.BLOCK_KINDS:
            raise ValueError(f"kind must be one of {F.BLOCK_KINDS + ('random',)}, got {kind!r}")
        super().__init__(templates=None, categories=("block",), coverage=coverage, block_kinds=kinds,
                         block_fill=fill, p=p, max_tries=max_tries)


class _LandmarkFinder:
    """``(H, W, 3) uint8 -> (68, 2)`` from a user callable or a backend name (a class, not a
    closure, so adapters pickle into spawned DataLoader workers)."""

    def __init__(self, landmarks: Union[str, Callable]):
        if not callable(landmarks) and landmarks not in ("aligned", "dlib", "mediapipe", "auto"):
            raise ValueError("landmarks must be a callable or one of aligned, dlib, mediapipe, auto; "
                             f"got {landmarks!r}")
        self.landmarks = landmarks

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if callable(self.landmarks):
            return _as_landmarks(self.landmarks(image))
        from .landmarks import detect

        return detect(image, backend=self.landmarks)[0].landmarks


class OccludeTorchvision:
    """``Occlude`` as a torchvision v2 transform on PIL images or ``(3, H, W) uint8`` tensors.

    Landmarks come from ``landmarks``: a callable ``(H, W, 3) uint8 RGB -> (68, 2)`` (or a
    ``Face``), or a backend name: ``aligned`` (the 68-point predictor on the whole frame, for
    aligned face crops; the default), ``dlib``, ``mediapipe`` or ``auto``. The random draw is
    seeded from ``torch``'s generator, so ``torch.manual_seed`` and DataLoader worker seeding
    control it. Returns the same type as the input (``tv_tensors.Image`` stays one), or
    ``(image, mask)`` with ``return_mask=True`` (mask as PIL ``L`` or a ``(1, H, W) uint8``
    tensor). ``on_failure="keep"`` returns the input unchanged (empty mask) when no face is
    found or no placement fits; the default ``"raise"`` re-raises.
    """

    def __init__(self, occlude: Occlude, landmarks: Union[str, Callable] = "aligned",
                 return_mask: bool = False, on_failure: str = "raise"):
        if on_failure not in ("raise", "keep"):
            raise ValueError(f"on_failure must be 'raise' or 'keep', got {on_failure!r}")
        self.occlude, self.find = occlude, _LandmarkFinder(landmarks)
        self.return_mask, self.on_failure = return_mask, on_failure

    def __call__(self, img: Any):
        import torch

        is_tensor = isinstance(img, torch.Tensor)
        if is_tensor:
            if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
                raise ValueError(f"tensor input must be (3, H, W) uint8, got {tuple(img.shape)} {img.dtype}")
            arr = np.ascontiguousarray(img.detach().cpu().permute(1, 2, 0).numpy())
        else:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        try:
            res = self.occlude(arr, self.find(arr), np.random.default_rng(seed))
            out, mask = res["image"], res["mask"]
        except OcclusionSynthError:
            if self.on_failure == "raise":
                raise
            out, mask = arr, np.zeros(arr.shape[:2], np.uint8)
        if is_tensor:
            t = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).contiguous()
            if type(img) is not torch.Tensor:
                t = t.as_subclass(type(img))  # keep tv_tensors.Image
            m = torch.from_numpy(mask)[None]
            return (t, m) if self.return_mask else t
        from PIL import Image

        pil = Image.fromarray(out)
        return (pil, Image.fromarray(mask, mode="L")) if self.return_mask else pil

    def __repr__(self) -> str:
        return f"OccludeTorchvision(categories={self.occlude.categories}, region={self.occlude.region!r})"
