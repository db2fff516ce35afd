"""The task stream: reader records -> typed :class:`Task` items (one per source sample to process).

Imports only :mod:`.config`. Everything here is a pure function of the options and the ids, so
any executor (local processes, a Ray cluster) and any shard sees the same tasks:

- :func:`pair_seed`: the seed of pair ``k`` of a sample, from ``(seed, id, k)`` only;
  :func:`face_seed` the same per face index (``faces="all"``);
- :func:`shard_of`: which of ``n`` shards owns an id (stable hash);
- :func:`val_assignment`: seeded, stratified (per class) move of a fraction of ``train`` to
  ``val``, by identity where the reader gives one (``Sample.meta["identity"]``);
- :func:`plan_tasks`: the lazy stream of :class:`Task` and :class:`ReaderSkip` items.

A :class:`Task` is a frozen dataclass of plain values plus the reader's loader (a picklable
``functools.partial`` for file readers), so it can be sent to another process or machine.
"""
from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import numpy as np

from ..errors import OcclusionSynthError
from .config import PairsConfig

DUPLICATE_ID = "duplicate id"


@dataclass(frozen=True)
class Task:
    """One source sample to turn into pairs.

    Attributes:
        id: sample id (file stem of its outputs).
        split: ``train``, ``val`` or ``test`` (after ``val_fraction``).
        label: canonical label, or None for unlabelled photos (manifest label left empty).
        source: where it came from, for messages and skipped.csv.
        load: the reader's loader (``() -> (H, W, 3) uint8``), a decoded array, or an error
            message (a loader that could not be sent to a worker, decoded in the main process).
        seeds: one seed per occluded variant (:func:`pair_seed`).
        landmarks: ``(68, 2) float32`` landmarks the dataset provides, or None.
        cached_faces: landmarks of an earlier run (``landmarks="cached"``), a tuple of
            ``(68, 2) float32`` arrays in source pixels, largest face first; None = detect.
        path: the source file when the reader gives a plain file (enables storing the clean
            image as the source bytes), else None.
    """

    id: str
    split: str
    label: Optional[int]
    source: str
    load: Any
    seeds: tuple
    landmarks: Optional[np.ndarray] = None
    cached_faces: Optional[tuple] = None
    path: Optional[str] = None


@dataclass(frozen=True)
class ReaderSkip:
    """A record the reader (or the planner) refused: goes to skipped.csv with ``reason``."""

    id: str
    source: str
    reason: str
    journal_id: str  # key of its journal line (a duplicate gets its own, so it never replaces the first)


def stable_hash(text: str) -> int:
    """64-bit hash of ``text``, the same in every process, run and machine (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")


def pair_seed(seed: int, sample_id: str, k: int = 0) -> int:
    """The seed of pair ``k`` of ``sample_id``: ``default_rng(pair_seed(...))`` replays its occlusion."""
    state = np.random.SeedSequence([int(seed), stable_hash(sample_id), int(k)]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def face_seed(pair: int, face_index: int) -> int:
    """Seed of face ``face_index`` of a pair (``faces="all"``); face 0 uses the pair seed itself,
    so ``largest`` and ``all`` draw the same occluder for the largest face."""
    if face_index == 0:
        return int(pair)
    state = np.random.SeedSequence([int(pair) >> 32, int(pair) & 0xFFFFFFFF, int(face_index)]).generate_state(
        2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def shard_of(sample_id: str, n: int) -> int:
    """Which of ``n`` shards owns ``sample_id`` (stable hash, so any split is reproducible)."""
    return stable_hash("shard:" + sample_id) % n


def val_assignment(seed: int, fraction: float, sample_id: str, label: Optional[int],
                   identity: Optional[str] = None) -> bool:
    """Whether a ``train`` sample moves to ``val`` under ``val_fraction``.

    A uniform number in [0, 1) is drawn from ``(seed, class, group)`` where the group is the
    identity when known (so a person is never in both splits), else the sample id; the sample
    moves when it is below ``fraction``. Each class therefore loses the same expected fraction
    (stratified), decided per sample without holding the dataset in memory.
    """
    if fraction <= 0:
        return False
    group = f"identity:{identity}" if identity else f"id:{sample_id}"
    key = group if identity else f"{label}:{group}"
    u = stable_hash(f"val:{seed}:{key}") / 2.0 ** 64
    return u < fraction


def _picklable(load: Any, cache: dict) -> bool:
    """Whether a reader's loader can travel to a worker (checked once per kind of loader)."""
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
    except OcclusionSynthError as exc:
        return str(exc)
    except Exception as exc:  # recorded as a skip by the worker
        return f"{type(exc).__name__}: {exc}"


def _source_path(load: Any) -> Optional[str]:
    """The file a ``functools.partial(read_image, path)`` loader reads, else None."""
    from ..io import read_image

    if getattr(load, "func", None) is read_image and len(getattr(load, "args", ())) == 1 and not load.keywords:
        return str(load.args[0])
    return None


def _duplicate(rec: Any) -> ReaderSkip:
    """The first record of an id wins; a later one is listed under its own journal key."""
    return ReaderSkip(rec.id, rec.source, f"{DUPLICATE_ID} (an earlier record of the source has the same id)",
                      f"{rec.id}#dup:{stable_hash(rec.source + chr(0) + getattr(rec, 'reason', '')):016x}")


def plan_tasks(stream: Iterable, cfg: PairsConfig, is_done: Callable[[str], bool],
               is_reader_skipped: Callable[[str], bool], seen_before: Callable[[str], bool],
               cached: Optional[Callable[[str], Optional[tuple]]] = None,
               stats: Optional[dict] = None) -> Iterator[Union[Task, ReaderSkip]]:
    """Turn reader records into :class:`Task` / :class:`ReaderSkip` items, lazily.

    Args:
        stream: the reader's ``Sample`` / ``Skipped`` records.
        cfg: the run's options (splits, limit, shard, seed, per_image, val_fraction, workers).
        is_done: whether an id is complete in the output already (resume: not yielded again).
        is_reader_skipped: whether an id's reader skip is journaled already.
        seen_before: records an id and says whether it was seen earlier in this stream
            (a later record with the same id becomes a ``duplicate id`` skip).
        cached: id -> faces of an earlier run (``landmarks="cached"``).
        stats: counters updated in place (``resumed``).
    """
    from ..types import Skipped

    stats = {} if stats is None else stats
    wanted = None if cfg.splits is None else set(cfg.splits)
    i, n = cfg.shard
    seen = 0
    pickle_ok: dict = {}
    for rec in stream:
        if isinstance(rec, Skipped):
            if shard_of(rec.id, n) != i:
                continue
            if seen_before(rec.id):
                yield _duplicate(rec)
            elif not is_done(rec.id) and not is_reader_skipped(rec.id):
                yield ReaderSkip(rec.id, rec.source, rec.reason, rec.id)
            continue
        split = rec.split
        if split == "train" and val_assignment(cfg.seed, cfg.val_fraction, rec.id, rec.label,
                                               (rec.meta or {}).get("identity")):
            split = "val"
        if wanted is not None and split not in wanted:
            continue
        if cfg.limit is not None and seen >= cfg.limit:
            break
        seen += 1
        if shard_of(rec.id, n) != i:
            continue
        if seen_before(rec.id):
            yield _duplicate(rec)
            continue
        if is_done(rec.id):
            stats["resumed"] = stats.get("resumed", 0) + 1
            continue
        load = rec.load
        if cfg.workers > 1 and not _picklable(load, pickle_ok):
            load = _preload(load)
        label = None if rec.label is None else int(rec.label)
        yield Task(id=rec.id, split=split, label=label, source=rec.source, load=load,
                   seeds=tuple(pair_seed(cfg.seed, rec.id, k) for k in range(cfg.per_image)),
                   landmarks=None if rec.landmarks is None else np.asarray(rec.landmarks, np.float32),
                   cached_faces=None if cached is None else cached(rec.id),
                   path=_source_path(rec.load))


__all__ = ["Task", "ReaderSkip", "DUPLICATE_ID", "stable_hash", "pair_seed", "face_seed", "shard_of",
           "val_assignment", "plan_tasks"]
