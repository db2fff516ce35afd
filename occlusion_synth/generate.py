"""Paired dataset generation: source reader -> landmarks -> framing -> occlusion -> files + journal.

The library entry points are :func:`generate` (one run, optionally one shard) and :func:`merge`
(shard outputs -> one output, identical to an unsharded run). ``occsynth generate`` / ``merge``
are thin wrappers.

Determinism: pair ``k`` of sample ``id`` draws its occlusion from
``np.random.default_rng(pair_seed(seed, id, k))``, a function of the global seed and the id only,
so the bytes written do not depend on the worker count, the order, sharding or interruption.
Shard membership is a stable hash of the id too (:func:`shard_of`).

Streaming: the reader is consumed lazily in the main process; at most ``2 * workers`` chunks of
``chunksize`` samples are in flight, so memory does not grow with the dataset. Each worker builds its own
``Occlude`` (template library) and landmark model once (pool initializer).
"""
from __future__ import annotations

import hashlib
import inspect
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from .errors import OcclusionSynthError
from .manifest import STATE_DIR, Journal, dataset_info, finalize, reason_kind, template_info
from .writer import FORMATS, STAGES, OutputLock, remove_outputs, remove_stale_temp  # noqa: F401

LANDMARK_MODES = ("auto", "dlib", "aligned", "mediapipe", "provided")
CROP_MODES = ("auto", "none", "face")
CATEGORIES = ("food", "hand", "drink", "mask", "block")
# options that change the bytes written; a resumed run must use the same values
OUTPUT_OPTIONS = ("src", "root", "reader_options", "landmark_options", "templates", "categories", "per_image",
                  "landmarks", "region", "coverage", "size", "crop", "crop_margin", "seed", "format",
                  "min_side", "max_side", "max_pixels")


@dataclass
class GenerateConfig:
    """Options of one generation run (the CLI options one to one).

    Attributes:
        src: reader name (:data:`occlusion_synth.sources.READER_NAMES`).
        root: dataset root folder.
        out: output folder.
        templates: template folder(s); None = the shipped library.
        categories: occluder categories to draw from.
        per_image: occluded variants per image (ids get ``_k0``.. when > 1; clean shared).
        landmarks: ``auto`` (provided landmarks when the source has them, else detection),
            ``dlib``, ``aligned``, ``mediapipe`` or ``provided``.
        region: placement region passed to ``Occlude`` (``auto``, ``mouth``, ``eyes`` ...).
        coverage: accepted occluded fraction ``(lo, hi)``; None = ``Occlude``'s default.
        size: output side in pixels (square sources; others keep the aspect, longer side = size).
        crop: ``face`` crops a square around the landmarks, ``none`` keeps the frame, ``auto`` =
            ``face`` for full-frame sources (affectnet, ckplus, rafdb original), else ``none``.
        crop_margin: extra room around the landmark box on each side, as a fraction of its side.
        splits, limit: which samples (``limit`` counts samples of the selected splits, in source
            order, before sharding).
        seed: global seed. workers: processes (1 = in this process). shard: ``(i, n)``, 0-based.
        overwrite: delete a previous run's output first (default: resume it).
        format: ``png`` or ``jpg`` for clean/occluded (masks are PNG).
        reader_options: keyword options of the reader (``variant``, ``label_map`` ...).
        landmark_options: options of the landmark backend (e.g. ``{"refine": 0}`` for a faster
            ``aligned``; see :func:`occlusion_synth.landmarks.get_backend`).
        min_side / max_side / max_pixels: images smaller than ``min_side`` are skipped; larger
            than ``max_side`` are downscaled first; above ``max_pixels`` are refused before
            decoding (decompression-bomb guard).
    """

    src: str
    root: str
    out: str
    templates: Optional[str] = None
    categories: tuple = CATEGORIES
    per_image: int = 1
    landmarks: str = "auto"
    region: str = "auto"
    coverage: Optional[tuple] = None
    size: Optional[int] = None
    crop: str = "auto"
    crop_margin: float = 0.25
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
    chunksize: int = 4
    progress: bool = False

    def validate(self) -> "GenerateConfig":
        """Check option values; raise ``OcclusionSynthError`` naming the option."""
        from .sources import READER_NAMES

        def bad(option: str, msg: str):
            raise OcclusionSynthError(f"--{option}: {msg}")

        if self.src not in READER_NAMES:
            bad("src", f"unknown source {self.src!r}; valid: {', '.join(READER_NAMES)}")
        cats = tuple(self.categories)
        if not cats or any(c not in CATEGORIES for c in cats):
            bad("categories", f"must be a non-empty subset of {','.join(CATEGORIES)}, got {','.join(cats)}")
        self.categories = cats
        if self.landmarks not in LANDMARK_MODES:
            bad("landmarks", f"must be one of {', '.join(LANDMARK_MODES)}, got {self.landmarks!r}")
        if self.crop not in CROP_MODES:
            bad("crop", f"must be one of {', '.join(CROP_MODES)}, got {self.crop!r}")
        if self.format not in FORMATS:
            bad("format", f"must be png or jpg, got {self.format!r}")
        if int(self.per_image) < 1:
            bad("per-image", f"must be >= 1, got {self.per_image}")
        if self.coverage is not None:
            lo, hi = (float(v) for v in self.coverage)
            if not 0.0 <= lo <= hi <= 1.0:
                bad("coverage", f"need 0 <= A <= B <= 1, got {lo:g}-{hi:g}")
            self.coverage = (lo, hi)
        if self.size is not None and int(self.size) < self.min_side:
            bad("size", f"must be at least {self.min_side} pixels, got {self.size}")
        if self.limit is not None and int(self.limit) < 0:
            bad("limit", f"must be >= 0, got {self.limit}")
        if int(self.workers) < 1:
            bad("workers", f"must be >= 1, got {self.workers}")
        i, n = (int(v) for v in self.shard)
        if not (n >= 1 and 0 <= i < n):
            bad("shard", f"expected i/n with 0 <= i < n, got {i}/{n}")
        self.shard = (i, n)
        self.crop = resolved_crop(self)
        if self.landmark_options:
            if self.landmarks == "provided":
                bad("landmark-option", "the provided landmarks take no options")
            from .landmarks import get_backend

            try:  # checks the option names now instead of failing on every sample
                get_backend(self.landmarks, **self.landmark_options)
            except ValueError as exc:
                bad("landmark-option", str(exc))
        if not Path(self.root).is_dir() and not (self.src == "demo" and not Path(self.root).exists()):
            bad("root", f"{self.root} is not a directory")
        return self

    def output_options(self) -> dict:
        """The options that determine the bytes written (compared on resume and merge)."""
        d = asdict(self)
        d = {k: d[k] for k in OUTPUT_OPTIONS}
        d["root"] = str(Path(self.root).resolve())
        d["templates"] = None if self.templates is None else str(Path(self.templates).resolve())
        d["categories"] = list(self.categories)
        d["coverage"] = None if self.coverage is None else list(self.coverage)
        d["reader_options"] = {k: (v if isinstance(v, (int, float, bool, type(None))) else str(v))
                               for k, v in sorted(self.reader_options.items())}
        d["landmark_options"] = {k: v for k, v in sorted(self.landmark_options.items())}
        d["templates_digest"] = templates_digest(self.templates) if any(
            c != "block" for c in self.categories) else None
        return d


@dataclass
class Summary:
    """What one ``generate`` / ``merge`` call did (printed by the CLI, used by the benchmark)."""

    out: str
    new_pairs: int = 0
    new_samples: int = 0
    resumed_samples: int = 0
    new_skipped: int = 0
    skipped_by_reason: dict = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    internal_errors: int = 0
    first_result_seconds: float = 0.0  # start-up: library, models, worker processes

    @property
    def pairs_per_second(self) -> float:
        return self.new_pairs / self.seconds if self.seconds > 0 else 0.0


def templates_digest(templates: Optional[str]) -> str:
    """SHA-256 over the template folder's files (names and bytes): a resume or a merge refuses
    to mix outputs made with different template libraries."""
    if templates is None:
        from .templates.library import assets_dir

        root = assets_dir()
    else:
        root = Path(templates)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() if p != root else p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def stable_hash(text: str) -> int:
    """64-bit hash of ``text`` that is the same in every process, run and machine (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")


def pair_seed(seed: int, sample_id: str, k: int = 0) -> int:
    """The seed of pair ``k`` of ``sample_id``: ``default_rng(pair_seed(...))`` replays its occlusion."""
    state = np.random.SeedSequence([int(seed), stable_hash(sample_id), int(k)]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def shard_of(sample_id: str, n: int) -> int:
    """Which of ``n`` shards owns ``sample_id`` (stable hash, so any split is reproducible)."""
    return stable_hash("shard:" + sample_id) % n


def resolved_crop(cfg: GenerateConfig) -> str:
    """``auto`` -> ``face`` for full-frame sources, ``none`` for sources of aligned crops."""
    if cfg.crop != "auto":
        return cfg.crop
    if cfg.src in ("affectnet", "ckplus"):
        return "face"
    if cfg.src == "rafdb" and cfg.reader_options.get("variant") == "original":
        return "face"
    return "none"


def reader_kwargs(reader, cfg: GenerateConfig) -> dict:
    """The reader options to pass, checked against the reader's signature."""
    params = inspect.signature(reader.iter_samples).parameters
    accepted = [p for p in params if p != "root"]
    kwargs = {}
    for key, value in cfg.reader_options.items():
        if value is None:
            continue
        if key not in params:
            raise OcclusionSynthError(f"--{key.replace('_', '-')} is not an option of source "
                                      f"{cfg.src!r} (its options: {', '.join(accepted) or 'none'})")
        kwargs[key] = value
    if cfg.splits is not None and "splits" in params:
        kwargs["splits"] = list(cfg.splits)
    return kwargs


# ------------------------------------------------------------------------------- main process
def _tasks(stream: Iterable, cfg: GenerateConfig, done: set, reader_skipped: set, journal: Journal,
           stats: Counter) -> Iterator[tuple]:
    """Turn reader records into worker tasks (lazily); journal reader-level skips on the way."""
    from .types import Skipped

    wanted = None if cfg.splits is None else set(cfg.splits)
    i, n = cfg.shard
    seen, ids = 0, set()
    pickle_ok: dict = {}
    for rec in stream:
        if isinstance(rec, Skipped):
            if shard_of(rec.id, n) == i and rec.id not in reader_skipped and rec.id not in done:
                journal.append({"id": rec.id, "pairs": [], "reader": True, "skipped": [
                    {"id": rec.id, "source": rec.source, "reason": rec.reason}]})
                reader_skipped.add(rec.id)
                stats["skip:" + reason_kind(rec.reason)] += 1
                stats["reader_skipped"] += 1
            continue
        if wanted is not None and rec.split not in wanted:
            continue
        if cfg.limit is not None and seen >= cfg.limit:
            break
        seen += 1
        if shard_of(rec.id, n) != i:
            continue
        if rec.id in ids:
            # keep the first record of an id: a second journal line would replace it
            reason = "duplicate sample id (an earlier record of the source has the same id)"
            journal.append({"id": f"{rec.id}#dup{seen}", "pairs": [],
                            "skipped": [{"id": rec.id, "source": rec.source, "reason": reason}]})
            stats["skip:" + reason_kind(reason)] += 1
            stats["reader_skipped"] += 1
            continue
        ids.add(rec.id)
        if rec.id in done:
            stats["resumed"] += 1
            continue
        load = rec.load
        if cfg.workers > 1 and not _picklable(load, pickle_ok):
            load = _preload(load)
        seeds = tuple(pair_seed(cfg.seed, rec.id, k) for k in range(cfg.per_image))
        yield (rec.id, rec.split, int(rec.label), rec.source, load, rec.landmarks, rec.box, seeds)


def _picklable(load: Any, cache: dict) -> bool:
    """Whether a reader's loader can travel to a worker (checked once per kind of loader)."""
    import pickle

    key = (type(load), getattr(load, "__qualname__", None),
           getattr(getattr(load, "func", None), "__qualname__", None))
    if key not in cache:
        try:
            pickle.dumps(load)
            cache[key] = True
        except Exception:  # closures, lambdas, local classes
            cache[key] = False
    return cache[key]


def _preload(load: Callable) -> Any:
    """Decode in the main process (loader not picklable): the array, or the error message."""
    try:
        return load()
    except Exception as exc:  # recorded as a skip by the worker
        return f"{type(exc).__name__}: {exc}" if not isinstance(exc, OcclusionSynthError) else str(exc)


def _check_resume(out: Path, cfg: GenerateConfig) -> None:
    import json

    opts_path = out / STATE_DIR / "options.json"
    current = json.loads(json.dumps(cfg.output_options(), default=str))  # as it reads back
    if opts_path.is_file():
        previous = json.loads(opts_path.read_text(encoding="utf-8"))
        diff = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if diff:
            raise OcclusionSynthError(
                f"--out {out}: it holds a run made with different {', '.join(diff)} "
                f"({', '.join(f'{k}={previous.get(k)!r}' for k in diff)}); pass --overwrite to "
                "replace it, or choose another --out")
    else:
        from .io import atomic_write_bytes

        atomic_write_bytes(opts_path, (json.dumps(current, indent=2, sort_keys=True, default=str) + "\n").encode())


def _load_library(cfg: GenerateConfig):
    """The run's template library (None when only blocks are drawn); fails early on bad templates."""
    if all(c == "block" for c in cfg.categories):
        return None
    from .templates import load_templates

    return load_templates(cfg.templates)


def generate(config: GenerateConfig, *, command: Optional[str] = None,
             occluder_factory: Optional[Callable[[GenerateConfig], Any]] = None) -> Summary:
    """Run (or resume) paired generation into ``config.out``.

    Args:
        config: the run's options.
        command: the command line, recorded in dataset.json.
        occluder_factory: test hook: builds the occluder from the config (in each worker; a
            picklable module-level function when ``workers > 1``). The object needs
            ``get_params(image, landmarks, rng)`` and ``apply(image, params) -> (image, mask)``.
            Default :func:`occlusion_synth.writer.build_occluder` (the real ``Occlude``).

    Returns:
        A :class:`Summary`; ``counts`` are the totals now in ``out`` (as in dataset.json).

    Raises:
        OcclusionSynthError: a bad option or path (names it), another run holds ``out``, ``out``
            holds a run made with different output options, or no pair at all could be generated.
    """
    from tqdm import tqdm

    from .sources import get_reader
    from .writer import run_tasks

    cfg = config.validate()
    reader = get_reader(cfg.src)
    kwargs = reader_kwargs(reader, cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = Summary(out=str(out))
    feeder_stats: Counter = Counter()  # counts of the task stream (resumed, reader skips)
    skips: Counter = Counter()
    with OutputLock(out):
        if cfg.overwrite:
            remove_outputs(out)
        try:
            stream = reader.iter_samples(cfg.root, **kwargs)  # layout errors surface here
        except (TypeError, ValueError) as exc:  # an option value the reader cannot use
            raise OcclusionSynthError(f"--src {cfg.src}: invalid reader option ({exc}); "
                                      f"options given: {kwargs or 'none'}") from None
        _check_resume(out, cfg)
        library = _load_library(cfg)
        templates = template_info(library, cfg.categories)
        remove_stale_temp(out)
        journal = Journal(out)
        done, reader_skipped = journal.completed()
        bar = tqdm(unit="pair", desc="generate", disable=not cfg.progress, dynamic_ncols=True,
                   total=None if cfg.limit is None else cfg.limit * cfg.per_image)
        with journal, bar:
            tasks = _tasks(stream, cfg, done, reader_skipped, journal, feeder_stats)
            for res in run_tasks(cfg, tasks, occluder_factory, library):
                if not summary.first_result_seconds:
                    summary.first_result_seconds = time.perf_counter() - start
                for k, v in res.pop("timing", {}).items():
                    summary.stage_seconds[k] = summary.stage_seconds.get(k, 0.0) + v
                journal.append(res)
                summary.new_pairs += len(res["pairs"])
                summary.new_samples += bool(res["pairs"])
                for row in res["skipped"]:
                    skips[reason_kind(row["reason"])] += 1
                    summary.internal_errors += row["reason"].startswith("internal error")
                bar.update(len(res["pairs"]))
                if res["skipped"]:
                    bar.set_postfix(skipped=sum(skips.values()), refresh=False)
        summary.counts = finalize(out, dataset_info(cfg, command, templates))
    for key, v in feeder_stats.items():
        if key.startswith("skip:"):
            skips[key[5:]] += v
    summary.resumed_samples = feeder_stats["resumed"]
    summary.new_skipped = sum(skips.values())
    summary.skipped_by_reason = dict(sorted(skips.items()))
    summary.seconds = time.perf_counter() - start
    if summary.counts.get("pairs", 0) == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in summary.counts.get("skipped_by_reason", {}).items())
        raise OcclusionSynthError(f"no pair could be generated from --src {cfg.src} --root {cfg.root} "
                                  f"({summary.counts.get('skipped', 0)} skipped"
                                  f"{'; ' + reasons if reasons else ''}); see {out / 'skipped.csv'}")
    return summary


def merge(shards: Sequence[os.PathLike | str], out: os.PathLike | str,
          command: Optional[str] = None) -> Summary:
    """Merge ``generate --shard i/n`` outputs into ``out``: the same files and index CSVs as one
    unsharded run (dataset.json differs only in ``command``/``options.shard``/``merged_from``).

    Raises:
        OcclusionSynthError: a folder is not a generate output, the shards were made with
            different output options, or two shards disagree about a sample.
    """
    from .manifest import merge_outputs

    start = time.perf_counter()
    counts, new_pairs = merge_outputs(shards, out, command)
    return Summary(out=str(out), new_pairs=new_pairs, counts=counts,
                   skipped_by_reason=counts.get("skipped_by_reason", {}),
                   seconds=time.perf_counter() - start)
