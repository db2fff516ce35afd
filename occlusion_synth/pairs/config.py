"""The options of one paired-generation run: :class:`PairsConfig`, validated once, never mutated.

Lowest layer of :mod:`occlusion_synth.pairs` (imports nothing else of the package's pipeline).
Messages name the *argument* (``coverage_range``, ``root``); the command line maps them onto
its flags (:class:`ConfigError` carries the argument name for that).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import OcclusionSynthError
from ..landmarks import BACKENDS
from ..placement import REGIONS
from ..transforms import CATEGORIES

LANDMARK_MODES = BACKENDS + ("cached",)  # cached: reuse the landmarks of an earlier output
CROP_MODES = ("auto", "none", "face")
FACE_MODES = ("largest", "all")
FORMATS = ("png", "jpg")
EXECUTORS = ("local", "ray")
OUTPUTS = ("folder", "webdataset")  # files + manifest.csv, or tar shards (occlusion_synth.shards)
DEFAULT_SHARD_SIZE = 1000
SPLITS = ("train", "val", "test")
DEFAULT_MAX_FILE_SIZE = 256 * 1024 * 1024
# options that change the bytes written; a resumed run and merged shards must agree on them
# Tasks per worker call: a worker decodes and locates a whole chunk before it makes the pairs
# (``SampleWorker.run``); 16 predictor calls back to back cost ~1 ms less per pair than task by
# task (docs/performance.md).
CHUNKSIZE = 16
OUTPUT_OPTIONS = ("src", "root", "reader_options", "landmark_options", "templates", "categories", "per_image",
                  "landmarks", "region", "coverage_range", "size", "crop", "crop_margin", "faces", "val_fraction",
                  "holdout_templates", "seed", "format", "min_side", "max_side", "max_pixels")


class ConfigError(OcclusionSynthError, ValueError):
    """An invalid option value; ``argument`` is the :class:`PairsConfig` field it concerns."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument
        self.message = message


@dataclass(frozen=True)
class PairsConfig:
    """Options of one generation run (checked at construction; frozen).

    Attributes:
        src: reader name (:data:`occlusion_synth.sources.READER_NAMES`).
        root: dataset root folder.
        out: output folder.
        templates: template folder; None = the shipped library.
        categories: occluder categories to draw from (:data:`occlusion_synth.transforms.CATEGORIES`).
        per_image: occluded variants per image (ids get ``_k0``.. when > 1; clean shared).
        landmarks: ``auto`` (provided landmarks when the source has them, else detection),
            ``dlib``, ``aligned``, ``mediapipe``, ``provided``, or ``cached`` (the landmarks an
            earlier output in ``landmark_cache`` saved; samples it lacks are detected with ``auto``).
        landmark_cache: output folder of an earlier run (for ``landmarks="cached"``).
        region: placement region (:data:`occlusion_synth.placement.REGIONS`).
        coverage_range: accepted occluded fraction ``(lo, hi)``; None = ``Occlude``'s default.
            (``coverage=`` is a deprecated alias.)
        size: output side in pixels (square frames; others keep the aspect, longer side = size).
        crop: ``face`` crops a square around the landmarks (:mod:`occlusion_synth.functional.crop`),
            ``none`` keeps the frame, ``auto`` = ``face`` for full-frame sources (affectnet,
            ckplus, rafdb original), else ``none``. Resolved at construction.
        crop_margin: extra room around the landmark box on each side, as a fraction of its side.
        faces: ``largest`` occludes the largest face; ``all`` gives every detected face its own
            occluder (randomness from ``(seed, id, face index)``), the mask is their union.
        val_fraction: move this stratified, seeded fraction of ``train`` to ``val`` (0 = off;
            identity-aware where the reader gives identities).
        holdout_templates: hold out this seeded fraction of each category's templates: train/val
            pairs use the others, test pairs either set (:mod:`occlusion_synth.templates.split`;
            0 = off).
        splits, limit: which samples (``limit`` counts samples of the selected splits, in
            source order, before sharding).
        seed: global seed (>= 0). workers: processes (1 = in this process). shard: ``(i, n)``.
        overwrite: delete a previous run's output first (default: resume it).
        format: ``png`` or ``jpg`` for clean/occluded (masks are PNG).
        reader_options: keyword options of the reader (``variant``, ``label_map`` ...).
        landmark_options: options of the landmark backend (see ``landmarks.get_backend``).
        min_side / max_side / max_pixels / max_file_size: images smaller than ``min_side``
            are skipped; larger than ``max_side`` are downscaled; over ``max_pixels`` (from the
            header) or ``max_file_size`` bytes are refused before decoding.
        chunksize: tasks per worker message. progress: show a progress bar.
        executor: ``local`` (this machine's processes) or ``ray`` (``workers`` Ray actors, see
            :mod:`occlusion_synth.pairs.ray_executor`); output bytes do not depend on it.
        ray_address: Ray cluster for ``executor="ray"``: ``auto``, ``HOST:PORT``, or None = a
            local Ray started for the run.
        output: ``folder`` (image files + manifest.csv) or ``webdataset`` (tar shards of
            ``shard_size`` pairs + index.json, see :mod:`occlusion_synth.shards`).
        shard_size: pairs per tar shard (``output="webdataset"``).
    """

    src: str
    root: str
    out: str
    templates: Optional[str] = None
    categories: tuple = CATEGORIES
    per_image: int = 1
    landmarks: str = "auto"
    landmark_cache: Optional[str] = None
    region: str = "auto"
    coverage_range: Optional[tuple] = None
    size: Optional[int] = None
    crop: str = "auto"
    crop_margin: float = 0.25
    faces: str = "largest"
    val_fraction: float = 0.0
    holdout_templates: float = 0.0
    splits: Optional[tuple] = None
    limit: Optional[int] = None
    seed: int = 0
    workers: int = 1
    shard: tuple = (0, 1)
    overwrite: bool = False
    format: str = "png"
    reader_options: dict = field(default_factory=dict)
    landmark_options: dict = field(default_factory=dict)
    min_side: int = 24
    max_side: int = 2048
    max_pixels: int = 40_000_000
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    chunksize: int = CHUNKSIZE
    progress: bool = False
    executor: str = "local"
    ray_address: Optional[str] = None
    output: str = "folder"
    shard_size: int = DEFAULT_SHARD_SIZE
    coverage: InitVar[Optional[tuple]] = None

    def __post_init__(self, coverage: Optional[tuple]) -> None:
        from ..sources import READER_NAMES

        def setf(name: str, value: Any) -> None:  # normalisation at construction only
            object.__setattr__(self, name, value)

        def bad(argument: str, message: str):
            raise ConfigError(argument, message)

        if coverage is not None:
            warnings.warn("PairsConfig(coverage=...) is deprecated; use coverage_range=",
                          DeprecationWarning, stacklevel=3)
            if self.coverage_range is not None:
                bad("coverage_range", "give coverage_range or its old name coverage, not both")
            setf("coverage_range", coverage)
        if self.src not in READER_NAMES:
            bad("src", f"unknown source {self.src!r}; valid: {', '.join(READER_NAMES)}")
        cats = (self.categories,) if isinstance(self.categories, str) else tuple(self.categories)
        if not cats or any(c not in CATEGORIES for c in cats):
            bad("categories", f"must be a non-empty subset of {','.join(CATEGORIES)}, got {','.join(cats)}")
        setf("categories", cats)
        for name, valid in (("landmarks", LANDMARK_MODES), ("crop", CROP_MODES), ("faces", FACE_MODES),
                            ("format", FORMATS), ("region", REGIONS), ("executor", EXECUTORS),
                            ("output", OUTPUTS)):
            if getattr(self, name) not in valid:
                bad(name, f"must be one of {', '.join(valid)}, got {getattr(self, name)!r}")
        for name, low in (("per_image", 1), ("workers", 1), ("chunksize", 1), ("seed", 0), ("min_side", 1),
                          ("max_side", 1), ("max_pixels", 1), ("max_file_size", 1),
                          ("shard_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                bad(name, f"must be an integer >= {low}, got {value!r}")
        if self.coverage_range is not None:
            try:
                lo, hi = (float(v) for v in self.coverage_range)
            except (TypeError, ValueError):
                bad("coverage_range", f"expected (lo, hi), got {self.coverage_range!r}")
            if not 0.0 <= lo <= hi <= 1.0:
                bad("coverage_range", f"need 0 <= lo <= hi <= 1, got {lo:g}-{hi:g}")
            setf("coverage_range", (lo, hi))
        if not (isinstance(self.crop_margin, (int, float)) and 0 <= self.crop_margin <= 5):
            bad("crop_margin", f"must be a number in 0..5, got {self.crop_margin!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0.0 <= self.val_fraction < 1.0):
            bad("val_fraction", f"must be in [0, 1), got {self.val_fraction!r}")
        if not (isinstance(self.holdout_templates, (int, float)) and 0.0 <= self.holdout_templates < 1.0):
            bad("holdout_templates", f"must be in [0, 1), got {self.holdout_templates!r}")
        if self.holdout_templates and all(c == "block" for c in cats):
            bad("holdout_templates", "needs a template category (blocks have no templates to hold out)")
        if self.size is not None and (not isinstance(self.size, int) or self.size < self.min_side):
            bad("size", f"must be an integer of at least {self.min_side} pixels, got {self.size!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            bad("limit", f"must be an integer >= 0, got {self.limit!r}")
        if self.splits is not None:
            splits = (self.splits,) if isinstance(self.splits, str) else tuple(self.splits)
            if not splits or any(s not in SPLITS for s in splits):
                bad("splits", f"must be a non-empty subset of {','.join(SPLITS)}, got {splits!r}")
            setf("splits", splits)
        try:
            i, n = (int(v) for v in self.shard)
        except (TypeError, ValueError):
            bad("shard", f"expected (i, n), got {self.shard!r}")
        if not (n >= 1 and 0 <= i < n):
            bad("shard", f"expected i/n with 0 <= i < n, got {i}/{n}")
        setf("shard", (i, n))
        if self.ray_address is not None and self.executor != "ray":
            bad("ray_address", "only used with executor='ray'")
        if self.output == "webdataset" and n > 1:
            bad("shard", "a webdataset output is one shard folder per run: generate folder outputs "
                         "with shard i/n, merge them, then `occsynth export --to webdataset`")
        setf("reader_options", dict(self.reader_options))
        setf("landmark_options", dict(self.landmark_options))
        setf("crop", _resolved_crop(self.crop, self.src, self.reader_options))
        if self.landmarks == "cached":
            if not self.landmark_cache:
                bad("landmark_cache", "landmarks='cached' needs the folder of an earlier output")
            if not (Path(self.landmark_cache) / "landmarks.jsonl").is_file():
                bad("landmark_cache", f"{self.landmark_cache} holds no landmarks.jsonl "
                                      "(not an output of this version of generate)")
        elif self.landmark_cache is not None:
            bad("landmark_cache", "only used with landmarks='cached'")
        if self.landmark_options:
            if self.landmarks == "provided":
                bad("landmark_options", "the provided landmarks take no options")
            from ..landmarks import get_backend

            try:  # checks the option names now instead of failing on every sample
                get_backend("auto" if self.landmarks == "cached" else self.landmarks, **self.landmark_options)
            except ValueError as exc:
                bad("landmark_options", str(exc))
        if not Path(self.root).is_dir() and not (self.src == "demo" and not Path(self.root).exists()):
            bad("root", f"{self.root} is not a directory")

    def replace(self, **changes: Any) -> "PairsConfig":
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def detector(self) -> str:
        """The landmark backend that runs when no landmarks come with the sample."""
        return "auto" if self.landmarks == "cached" else self.landmarks

    def to_dict(self) -> dict:
        """All options as JSON-ready values (dataset.json)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d.pop("progress", None)
        d.pop("ray_address", None)  # where it ran, not what it made (may name a host)
        return json.loads(json.dumps(d, default=str))

    def output_options(self) -> dict:
        """The options that determine the bytes written (compared on resume and merge)."""
        d = self.to_dict()
        d = {k: d[k] for k in OUTPUT_OPTIONS}
        if self.output != "folder":  # absent for folder outputs: older runs still resume
            d["output"], d["shard_size"] = self.output, self.shard_size
        if not d["holdout_templates"]:  # off: outputs of earlier versions (without the field) resume
            del d["holdout_templates"]
        d["root"] = str(Path(self.root).resolve())
        d["templates"] = None if self.templates is None else str(Path(self.templates).resolve())
        d["reader_options"] = {k: (v if isinstance(v, (int, float, bool, type(None))) else str(v))
                               for k, v in sorted(self.reader_options.items())}
        d["landmark_options"] = dict(sorted(self.landmark_options.items()))
        d["templates_digest"] = templates_digest(self.templates) if any(
            c != "block" for c in self.categories) else None
        return json.loads(json.dumps(d, default=str))


def _resolved_crop(crop: str, src: str, reader_options: dict) -> str:
    """``auto`` -> ``face`` for full-frame sources, ``none`` for sources of aligned crops."""
    if crop != "auto":
        return crop
    if src in ("affectnet", "ckplus"):
        return "face"
    if src == "rafdb" and reader_options.get("variant") == "original":
        return "face"
    return "none"


def templates_digest(templates: Optional[str]) -> str:
    """SHA-256 over the template folder's files (names and bytes): a resume or a merge refuses
    to mix outputs made with different template libraries."""
    if templates is None:
        from ..templates.library import assets_dir

        root = assets_dir()
    else:
        root = Path(templates)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() if p != root else p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()

