"""Template and TemplateLibrary, and reading template folders from disk.

On-disk layout (details in docs/templates.md)::

    ROOT/<category>/<stem>.png         RGBA, straight alpha
    ROOT/<category>/<stem>.json        optional sidecar: category, anchors, scale_range, licence, source
    ROOT/<category>/<stem>.jpg         RGB image (JPEG or PNG) ...
    ROOT/<category>/<stem>_mask.png    ... with its alpha as a separate 8-bit mask (same size)

Without a sidecar the category is the folder name, the ``center`` anchor is the alpha centroid
and ``scale_range`` is the category default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from ..errors import TemplateError
from ..landmarks.schemes import CANONICAL_68
from .alpha import alpha_bbox, alpha_centroid, bleed_transparent
from .cache import cached_rgba
from .sidecar import CATEGORIES, read_sidecar

PathLike = Union[str, os.PathLike]

# Occluder width / inter-ocular distance. Masks are fitted to the landmarks through their "lm<i>"
# anchors, so theirs is only a fallback for placement code that scales instead of warping.
DEFAULT_SCALE_RANGES: dict[str, tuple[float, float]] = {
    "food": (0.9, 1.6),
    "drink": (1.0, 1.8),
    "hand": (1.6, 2.6),
    "mask": (2.1, 2.6),
}

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_SUFFIX = "_mask"
MIN_SIZE = 16

# Mask anchors: "lm<i>" = this template point goes on iBUG-68 landmark i (0-based).
MASK_ANCHOR_LANDMARKS: tuple[int, ...] = tuple(range(1, 16)) + (28, 29, 30, 31, 33, 35, 48, 51, 54, 57)
REQUIRED_MASK_ANCHORS: tuple[str, ...] = ("lm1", "lm3", "lm5", "lm8", "lm11", "lm13", "lm15", "lm28")
NOSE_TIP_ANCHORS: tuple[str, ...] = ("lm30", "lm33")  # at least one of these


def _mirror_68() -> tuple[int, ...]:
    pairs = [(i, 16 - i) for i in range(17)] + [(17 + i, 26 - i) for i in range(5)]
    pairs += [(i, i) for i in range(27, 31)] + [(31, 35), (32, 34), (33, 33)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (51, 51), (55, 59), (56, 58), (57, 57)]
    pairs += [(60, 64), (61, 63), (62, 62), (65, 67), (66, 66)]
    table = list(range(68))
    for a, b in pairs:
        table[a], table[b] = b, a
    return tuple(table)


# iBUG-68 index of the mirror-image landmark (image flipped left-right)
MIRROR_68: tuple[int, ...] = _mirror_68()


def _frozen(rgba: np.ndarray) -> np.ndarray:
    """A read-only view of ``rgba`` (the array itself when it is already read-only)."""
    rgba = np.asarray(rgba)
    if not rgba.flags.writeable:
        return rgba
    view = rgba.view()
    view.flags.writeable = False
    return view


@dataclass(eq=False)  # identity equality: comparing pixel arrays with == is ambiguous
class Template:
    """One occluder image with its placement metadata.

    Attributes:
        name: ``"category/stem"``, unique within a library.
        category: one of :data:`CATEGORIES`.
        rgba: ``(h, w, 4) uint8`` straight alpha; RGB of fully transparent pixels is the nearest
            visible colour (safe to warp with bilinear interpolation). Read-only: the template
            keeps a read-only view, so its prepared (premultiplied) form can be cached.
        anchors: named points ``(x, y)`` in template pixels. Every template has ``"center"``;
            masks also have ``"lm<i>"`` keys: the point that goes on 68-landmark ``i``.
        scale_range: ``(min, max)`` occluder width relative to the inter-ocular distance.
        licence: SPDX-style licence of the artwork (``"unknown"`` for user files without JSON).
        source: where the artwork comes from (glyph code points, drawing function, file).
        path: the image file it was read from (None for in-memory templates).
    """

    name: str
    category: str
    rgba: np.ndarray
    anchors: dict[str, tuple[float, float]]
    scale_range: tuple[float, float]
    licence: str = "unknown"
    source: str = ""
    path: Optional[Path] = None

    def __post_init__(self) -> None:
        self.rgba = _frozen(self.rgba)

    def __setstate__(self, state: dict) -> None:
        # unpickled arrays (a spawned worker's copy of the library) come back writable
        self.__dict__.update(state)
        self.rgba = _frozen(self.rgba)
        self.__dict__.pop("_lm_anchors", None)  # its arrays too: made again, read-only, on first use

    @property
    def prepared(self):
        """The template ready to warp (:class:`~occlusion_synth.functional.warp.PreparedRGBA`):
        premultiplied, at the pyramid levels used so far; made once per process and cached."""
        from ..functional.warp import prepare_rgba

        return prepare_rgba(self.rgba)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.rgba.shape[1]), int(self.rgba.shape[0])

    @property
    def alpha(self) -> np.ndarray:
        """``(h, w) uint8`` alpha channel (a view)."""
        return self.rgba[..., 3]

    def landmark_anchors(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``lm<i>`` anchors as arrays, sorted by landmark index.

        Returns:
            ``(indices (K,) int64, points (K, 2) float32)``, read-only; empty arrays if there are
            none.
        """
        key = tuple(self.anchors.items())  # a mask's anchors are read on every draw: keep them
        cached = self.__dict__.get("_lm_anchors")
        if cached is not None and cached[0] == key:
            return cached[1]
        items = sorted((int(k[2:]), v) for k, v in self.anchors.items()
                       if k.startswith("lm") and k[2:].isdigit())
        idx = np.array([i for i, _ in items], dtype=np.int64)
        pts = np.array([p for _, p in items], dtype=np.float32).reshape(-1, 2)
        idx.flags.writeable = pts.flags.writeable = False
        self.__dict__["_lm_anchors"] = (key, (idx, pts))
        return idx, pts

    def flipped(self) -> "Template":
        """The horizontal mirror image, named ``<name>_flipped``.

        Anchors are mirrored; ``lm<i>`` keys are renamed to the mirrored landmark (jaw point 1
        becomes 15, mouth corner 48 becomes 54, ...), so a flipped mask still fits the face.
        """
        w = self.rgba.shape[1]
        anchors = {}
        for key, (x, y) in self.anchors.items():
            if key.startswith("lm") and key[2:].isdigit():
                key = f"lm{MIRROR_68[int(key[2:])]}"
            anchors[key] = (float(w - x), float(y))
        return Template(name=f"{self.name}_flipped", category=self.category,
                        rgba=np.ascontiguousarray(self.rgba[:, ::-1]), anchors=anchors,
                        scale_range=self.scale_range, licence=self.licence, source=self.source, path=self.path)

    def __repr__(self) -> str:
        w, h = self.size
        return f"Template({self.name!r}, {w}x{h}, anchors={sorted(self.anchors)})"


@dataclass
class TemplateLibrary:
    """An ordered collection of templates (sorted by name, so seeded sampling is reproducible)."""

    templates: list[Template] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.templates = sorted(self.templates, key=lambda t: t.name)
        names = [t.name for t in self.templates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TemplateError(f"duplicate template names: {', '.join(dupes)}")
        self._by_name = {t.name: t for t in self.templates}
        self._by_category: dict[str, list[Template]] = {}

    def categories(self) -> list[str]:
        """Categories present, in :data:`CATEGORIES` order."""
        present = {t.category for t in self.templates}
        return [c for c in CATEGORIES if c in present]

    def by_category(self, category: str) -> list[Template]:
        """Templates of one category (may be empty), sorted by name."""
        found = self._by_category.get(category)
        if found is None:  # asked on every draw: made once (like the name index)
            found = self._by_category[category] = [t for t in self.templates if t.category == category]
        return list(found)

    def get(self, name: str) -> Template:
        """The template called ``name`` (``"category/stem"``).

        Raises:
            TemplateError: no such template.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise TemplateError(f"no template named {name!r} (library has {len(self)})") from None

    def __len__(self) -> int:
        return len(self.templates)

    def __iter__(self) -> Iterator[Template]:
        return iter(self.templates)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


def assets_dir() -> Path:
    """The shipped template library.

    Looks for ``occlusion_synth/assets`` (a wheel that packages the templates as package data) and
    then for ``assets/`` at the repository root (source checkout or editable install).
    """
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "assets", here.parents[1] / "assets"):
        if cand.is_dir():
            return cand
    raise TemplateError(f"shipped template folder not found (looked in {here.parent / 'assets'} "
                        f"and {here.parents[1] / 'assets'}); run `occsynth templates build`")


# Extent of a typical mask body (loops and straps excluded) in the canonical unit frame of
# CANONICAL_68: measured on the drawn masks (occlusion_synth.templates.masks), which reach from just
# outside jaw points 1/15 across, and from above the nose bridge (lm28) to just below the chin (lm8).
MASK_BODY_BOX = ((0.0, 0.178), (1.01, 1.033))


def guess_mask_anchors(alpha: np.ndarray) -> dict[str, tuple[float, float]]:
    """Landmark anchors for a mask image without a sidecar, from the extent of the mask body.

    Thin parts (ear loops, straps) are removed by a morphological opening; the remaining bounding box
    is taken to be :data:`MASK_BODY_BOX` of the canonical face. Good for frontal mask pictures;
    give real anchors in JSON for anything else.
    """
    import cv2

    solid = (alpha > 127).astype(np.uint8)
    k = max(3, alpha.shape[1] // 32) | 1
    body = cv2.morphologyEx(solid, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    box = alpha_bbox(body if body.any() else solid)
    if box is None:
        return {}
    x0, y0, x1, y1 = box
    lo, hi = np.array(MASK_BODY_BOX[0]), np.array(MASK_BODY_BOX[1])
    out = {}
    for i in MASK_ANCHOR_LANDMARKS:
        u = (CANONICAL_68[i] - lo) / (hi - lo)
        out[f"lm{i}"] = (round(float(x0 + u[0] * (x1 - x0)), 2), round(float(y0 + u[1] * (y1 - y0)), 2))
    return out


def _read_rgba(image_path: Path) -> np.ndarray:
    """Read an image + optional ``_mask`` file as ``(h, w, 4) uint8`` straight alpha."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image_path) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            rgba = np.array(im.convert("RGBA"), dtype=np.uint8)
    except FileNotFoundError:
        raise TemplateError(f"{image_path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise TemplateError(f"{image_path}: cannot read image ({exc})") from None
    mask_path = find_mask_file(image_path)
    if mask_path is not None:
        try:
            with Image.open(mask_path) as m:
                m.load()
                mask = np.array(m.convert("L"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise TemplateError(f"{mask_path}: cannot read mask image ({exc})") from None
        if mask.shape != rgba.shape[:2]:
            raise TemplateError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but "
                                f"{image_path.name} is {rgba.shape[1]}x{rgba.shape[0]}")
        rgba[..., 3] = mask
    elif not has_alpha:
        raise TemplateError(f"{image_path}: no alpha channel and no mask file "
                            f"{image_path.stem}{MASK_SUFFIX}.png next to it")
    return rgba


def find_mask_file(image_path: Path) -> Optional[Path]:
    """The ``<stem>_mask.png`` (or .jpg/.jpeg) next to ``image_path``, if any."""
    for suffix in IMAGE_SUFFIXES:
        cand = image_path.with_name(f"{image_path.stem}{MASK_SUFFIX}{suffix}")
        if cand.is_file():
            return cand
    return None


def read_template(image_path: PathLike, category: Optional[str] = None) -> Template:
    """Read one template: image (+ ``_mask`` file) (+ sidecar JSON).

    Args:
        image_path: the RGBA PNG, or RGB JPEG/PNG with a ``<stem>_mask.png`` next to it.
        category: used when there is no sidecar category (normally the folder name).

    Raises:
        TemplateError: unreadable or unusable file, bad sidecar, unknown category, empty alpha,
            image under 16 px, anchors outside the image; the message names the file.
    """
    path = Path(image_path)
    json_path = path.with_suffix(".json")
    meta = read_sidecar(json_path) if json_path.is_file() else {}
    cat = meta.get("category", category)
    if cat not in CATEGORIES:
        raise TemplateError(f"{path}: unknown category {cat!r}: give it in {json_path.name} or put "
                            f"the file in a folder named one of {', '.join(CATEGORIES)}")
    mask_path = find_mask_file(path)
    rgba = cached_rgba([path] + ([mask_path] if mask_path is not None else []),
                       lambda: bleed_transparent(_read_rgba(path)))
    h, w = rgba.shape[:2]
    if min(h, w) < MIN_SIZE:
        raise TemplateError(f"{path}: too small ({w}x{h}; templates need at least {MIN_SIZE} px a side)")
    if not rgba[..., 3].any():
        raise TemplateError(f"{path}: empty alpha (the template is fully transparent)")
    if "size" in meta and tuple(meta["size"]) != (w, h):
        raise TemplateError(f"{json_path}: size {meta['size']} does not match the image ({w}x{h})")
    anchors = dict(meta.get("anchors", {}))
    if "center" not in anchors:  # (not setdefault: the centroid costs ~1 ms a template)
        anchors["center"] = alpha_centroid(rgba[..., 3])
    if cat == "mask" and not any(k.startswith("lm") for k in anchors):
        anchors.update(guess_mask_anchors(rgba[..., 3]))
    for key, (x, y) in anchors.items():
        if not (0.0 <= x <= w and 0.0 <= y <= h):
            raise TemplateError(f"{path}: anchor {key!r} ({x:g}, {y:g}) lies outside the {w}x{h} image")
    return Template(
        name=f"{cat}/{path.stem}", category=cat, rgba=rgba, anchors=anchors,
        scale_range=tuple(meta.get("scale_range", DEFAULT_SCALE_RANGES[cat])),
        licence=meta.get("licence", "unknown"), source=meta.get("source", str(path)), path=path)


def template_files(folder: Path) -> list[Path]:
    """Template image files directly in ``folder`` (mask files and sidecars excluded), sorted."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    stems = {p.stem for p in files}
    return [p for p in files
            if not (p.stem.endswith(MASK_SUFFIX) and p.stem[: -len(MASK_SUFFIX)] in stems)]


def _iter_template_files(root: Path) -> Iterable[tuple[Path, Optional[str]]]:
    """(file, folder category) pairs under a root: ROOT/<category>/* and ROOT/* itself."""
    if root.is_file():
        yield root, root.parent.name
        return
    for p in template_files(root):
        yield p, root.name
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for p in template_files(sub):
            yield p, sub.name


def load_templates(path_or_paths: Union[None, PathLike, Sequence[PathLike]] = None,
                   categories: Optional[Iterable[str]] = None) -> TemplateLibrary:
    """Load template libraries from disk.

    Args:
        path_or_paths: None for the shipped library (:func:`assets_dir`); a folder of category
            sub-folders (``ROOT/food/*.png``); a category folder itself (``ROOT/food``); a single
            image file; or a list of any of these.
        categories: keep only these categories (each must be one of :data:`CATEGORIES`).

    Returns:
        A :class:`TemplateLibrary` sorted by name.

    Raises:
        TemplateError: a missing path, a bad template (message names the file and the reason),
            an unknown category name, or no template found.
    """
    if path_or_paths is None:
        roots = [assets_dir()]
    elif isinstance(path_or_paths, (str, os.PathLike)):
        roots = [Path(path_or_paths)]
    else:
        roots = [Path(p) for p in path_or_paths]
    wanted = None
    if categories is not None:
        wanted = set(categories)
        bad = sorted(wanted - set(CATEGORIES))
        if bad:
            raise TemplateError(f"unknown template categories {bad} (known: {', '.join(CATEGORIES)})")
    templates = []
    for root in roots:
        if not root.exists():
            raise TemplateError(f"{root}: template path not found")
        for path, folder_cat in _iter_template_files(root):
            json_path = path.with_suffix(".json")
            # skip files of unwanted categories without decoding them
            cat = folder_cat
            if json_path.is_file():
                cat = read_sidecar(json_path).get("category", folder_cat)
            if wanted is not None and cat not in wanted:
                continue
            if cat not in CATEGORIES and path.parent == root and root.is_dir() and not json_path.is_file():
                # loose files in a root of category folders: not templates unless described
                continue
            templates.append(read_template(path, folder_cat))
    if not templates:
        which = f" of categories {sorted(wanted)}" if wanted is not None else ""
        raise TemplateError(f"no templates{which} found in {', '.join(str(r) for r in roots)} "
                            f"(expected ROOT/<category>/<name>.png with category one of "
                            f"{', '.join(CATEGORIES)})")
    return TemplateLibrary(templates)
