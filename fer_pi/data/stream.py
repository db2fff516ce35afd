"""Streaming training data from WebDataset tar shards (``occsynth export --to webdataset``).

A shard source is the shard folder, its ``index.json``, or a glob / brace pattern of tar files
(``shards/train-{000000..000099}.tar``, ``shards/*.tar``); shards of split ``s`` are the files
named ``s-NNNNNN.tar``. Sample counts come from ``index.json`` when the shards' folder has one,
otherwise from one scan of the tars when the loader is built.

Splitting: every epoch the split's shard list is permuted by ``(seed, epoch)`` (the same on every
process), then rank ``r`` of ``R`` takes shards ``r::R`` and DataLoader worker ``w`` of ``W`` takes
``w::W`` of those (:func:`split_shards`), so ranks x workers read every shard exactly once. Under
DDP every rank must run the same number of steps: each worker then yields whole batches only and
all ranks are cut to the smallest rank's batch count (:func:`worker_quotas`), which drops at most
a few batches per epoch. Evaluation streams (no shuffling) read the whole split on every rank. Items are those of the folder loader (:func:`~fer_pi.data.paired.make_item`,
same joint augmentation); an item's random stream comes from ``(seed, epoch, crc32(key))``, so it
does not depend on the worker or rank that reads it.
"""
from __future__ import annotations

import glob
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from occlusion_synth.errors import OcclusionSynthError
from occlusion_synth.io import decode_image

from ..errors import DataError
from .paired import make_item
from .transforms import JointAugment

INDEX = "index.json"
_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_-]+)-\d{6}\.tar$")


@dataclass(frozen=True)
class Shard:
    """One tar shard of a split: its path, sample count and ``{label: count}``."""

    path: str
    count: int
    labels: dict


def is_shard_source(data: str | Path) -> bool:
    """True for a shard folder (holds ``index.json``), an ``index.json`` or a pattern of ``.tar`` files."""
    s = str(data)
    p = Path(s)
    if p.name == INDEX or (p.is_dir() and (p / INDEX).is_file() and not (p / "manifest.csv").is_file()):
        return True
    return s.endswith(".tar") or (s.endswith(".tar}") and "{" in s)


def _expand(pattern: str) -> list[str]:
    from braceexpand import braceexpand

    out: list[str] = []
    for part in braceexpand(pattern):
        hits = sorted(glob.glob(part)) if any(c in part for c in "*?[") else [part]
        out.extend(hits)
    return list(dict.fromkeys(out))


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(index.get("splits"), dict):
            raise ValueError("no 'splits'")
        return index
    except FileNotFoundError:
        raise DataError(f"{path}: not found (expected the index.json of `occsynth export --to webdataset`)") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: unreadable shard index ({exc})") from None


def _scan(path: str) -> Shard:
    """Count the samples and labels of one tar shard by reading its json members."""
    from occlusion_synth.shards import iter_shard

    labels: dict[str, int] = {}
    n = 0
    try:
        for key, files in iter_shard(path):
            n += 1
            lab = str(json.loads(files["json"])["label"]) if "json" in files else ""
            labels[lab] = labels.get(lab, 0) + 1
    except (OcclusionSynthError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: {exc}") from None
    return Shard(path, n, labels)


def resolve_shards(data: str | Path) -> dict[str, list[Shard]]:
    """``{split: [Shard, ...]}`` of a shard source (see the module docstring).

    Raises:
        DataError: missing index or shard files, no shard matching a pattern.
    """
    s = str(data)
    p = Path(s)
    if p.is_dir() or p.name == INDEX:
        index_path = p / INDEX if p.is_dir() else p
        index = _read_index(index_path)
        out = {}
        for split, entry in index["splits"].items():
            shards = [Shard(str(index_path.parent / sh["name"]), int(sh["count"]), dict(sh.get("labels", {})))
                      for sh in entry.get("shards", [])]
            missing = [sh.path for sh in shards if not Path(sh.path).is_file()]
            if missing:
                raise DataError(f"{index_path}: shard {missing[0]} not found ({len(missing)} missing)")
            out[split] = shards
        return out
    paths = _expand(s)
    if not paths:
        raise DataError(f"--data {s}: no shard file matches")
    known: dict[str, Shard] = {}
    for folder in sorted({Path(x).parent for x in paths}):
        if (folder / INDEX).is_file():
            for entry in _read_index(folder / INDEX)["splits"].values():
                for sh in entry.get("shards", []):
                    known[str(folder / sh["name"])] = Shard(str(folder / sh["name"]), int(sh["count"]),
                                                           dict(sh.get("labels", {})))
    out: dict[str, list[Shard]] = {}
    for x in paths:
        m = _SHARD.match(Path(x).name)
        if not Path(x).is_file():
            raise DataError(f"--data {s}: shard {x} not found")
        if m is None:
            raise DataError(f"{x}: shard names must be SPLIT-NNNNNN.tar (as `occsynth export` writes them)")
        out.setdefault(m["split"], []).append(known.get(x) or _scan(x))
    return out


def shard_splits(data: str | Path) -> list[str]:
    """Split names of a shard source (``train`` first, then ``val``, ``test``, others)."""
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(resolve_shards(data), key=lambda s: (order.get(s, 9), s))


def split_shards(items: list, rank: int, world: int, worker: int, workers: int) -> list:
    """The items rank ``rank`` of ``world`` hands to its DataLoader worker ``worker`` of ``workers``:
    ``items[rank::world][worker::workers]`` (all (rank, worker) pairs together cover every item
    exactly once)."""
    return list(items)[rank::world][worker::workers]


def worker_quotas(counts: list[int], world: int, workers: int, batch_size: int) -> list[list[int]]:
    """Samples each (rank, worker) may yield so that every rank runs the same number of whole batches.

    Args:
        counts: samples per shard, in the epoch's shard order.

    Returns:
        ``quota[rank][worker]``, each a multiple of ``batch_size``; every rank's sum is the smallest
        rank's number of whole batches times ``batch_size``.
    """
    full = [[sum(split_shards(counts, r, world, w, workers)) // batch_size for w in range(workers)]
            for r in range(world)]
    target = min(sum(row) for row in full)
    quotas = []
    for row in full:
        left, q = target, []
        for n in row:
            take = min(n, left)
            q.append(take * batch_size)
            left -= take
        quotas.append(q)
    return quotas


class ShardStream(IterableDataset):
    """(clean, occluded, mask, label) items of one split streamed from tar shards.

    Args:
        data: shard source (folder, ``index.json`` or pattern).
        split: split name; image_size: side ``S``; augment: joint augmentation (training).
        seed: base of shard order, shuffle buffer and augmentation streams.
        shuffle_buffer: samples held for within-worker shuffling (0: shard order only).

    Raises:
        DataError: unknown split (names those present), unreadable index or shards.
    """

    def __init__(self, data: str | Path, split: str, image_size: int, augment: bool = False, seed: int = 0,
                 augmenter: JointAugment | None = None, shuffle_buffer: int = 256):
        shards = resolve_shards(data)
        if not shards.get(split):
            raise DataError(f"{data}: no shards for split {split!r} (splits present: "
                            f"{', '.join(shard_splits(data)) or 'none'})")
        self.data, self.split, self.shards = str(data), split, shards[split]
        self.image_size, self.augment = int(image_size), augment
        self.augmenter = augmenter or JointAugment()
        self.seed, self.epoch, self.shuffle_buffer = int(seed), 0, int(shuffle_buffer)
        labels: set[int] = set()
        for sh in self.shards:
            labels.update(int(k) for k, v in sh.labels.items() if v and k.lstrip("-").isdigit())
        self.labels = sorted(labels)
        self.batch_size, self.shuffle, self.drop_last, self.num_workers = 1, False, False, 0
        self.rank, self.world = 0, 1

    def configure(self, batch_size: int, shuffle: bool, seed: int, drop_last: bool, num_workers: int) -> None:
        """Set by :func:`~fer_pi.data.paired.build_loader` (the quotas need the batch layout)."""
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.drop_last, self.num_workers = bool(drop_last), int(num_workers)
        from ..distributed import current

        info = current()  # read here: worker processes may not see the process group
        self.rank, self.world = info.rank, info.world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shard order, shuffle and augmentation streams."""
        self.epoch = int(epoch)

    def _order(self) -> list[Shard]:
        if not self.shuffle:
            return list(self.shards)
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        return [self.shards[i] for i in perm]

    def _plan(self, rank: int, world: int, workers: int) -> tuple[list[Shard], list[list[int]] | None]:
        order = self._order()
        if world > 1 and self.shuffle:  # training under DDP: equal whole batches on every rank
            quotas = worker_quotas([s.count for s in order], world, workers, self.batch_size)
            if sum(quotas[0]) == 0:
                raise DataError(f"{self.data}: split {self.split!r} has too few samples per shard for "
                                f"{world} ranks x {workers} workers x batch {self.batch_size}: "
                                "export with a smaller --shard-size or use fewer workers")
            return order, quotas
        return order, None

    def __len__(self) -> int:
        """Samples this process yields in an epoch (all its workers together)."""
        order, quotas = self._plan(self.rank, self.world, max(self.num_workers, 1))
        if quotas is not None:
            return sum(quotas[self.rank])
        rank, world = self._split_by()
        return sum(s.count for s in split_shards(order, rank, world, 0, 1))

    def _split_by(self) -> tuple[int, int]:
        """(rank, world) the shards are split by. Evaluation (``shuffle=False``) under DDP reads the
        whole split on every rank: a DDP forward syncs buffers, so ranks must run the same number
        of batches, and summing R identical counts leaves the accuracy unchanged."""
        return (self.rank, self.world) if self.shuffle else (0, 1)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import webdataset as wds

        winfo = get_worker_info()
        worker, workers = (winfo.id, winfo.num_workers) if winfo is not None else (0, 1)
        order, quotas = self._plan(self.rank, self.world, workers)
        mine = split_shards(order, *self._split_by(), worker, workers)
        quota = quotas[self.rank][worker] if quotas is not None else None
        if not mine or quota == 0:
            return
        stream = wds.WebDataset([s.path for s in mine], shardshuffle=False, nodesplitter=None,
                                workersplitter=None, empty_check=False)
        if self.shuffle and self.shuffle_buffer > 0:
            samples = _shuffled(iter(stream), self.shuffle_buffer,
                                np.random.default_rng([self.seed, self.epoch, self.rank, worker]))
        else:
            samples = iter(stream)
        for n, sample in enumerate(samples):
            if quota is not None and n >= quota:
                return
            yield self._item(sample)

    def _item(self, sample: dict) -> dict[str, Any]:
        key = sample["__key__"]
        where = f"{sample.get('__url__', self.data)}:{key}"
        from occlusion_synth.shards import member

        files = {k: v for k, v in sample.items() if not k.startswith("__")}
        try:
            meta = json.loads(sample["json"])
            images = {}
            for kind in ("clean", "occluded", "mask"):
                data = member(files, kind)
                if data is None:
                    raise KeyError(f"{kind}.png")
                images[kind] = decode_image(data, f"{where}.{kind}")
        except KeyError as exc:
            raise DataError(f"{where}: sample lacks {exc}") from None
        except (ValueError, OcclusionSynthError) as exc:
            raise DataError(f"{where}: {exc}") from None
        clean, occluded, mask = images["clean"], images["occluded"], images["mask"][..., 0]
        if occluded.shape != clean.shape:
            raise DataError(f"{where}: occluded size {occluded.shape[:2]} differs from clean {clean.shape[:2]}")
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode())])
        coverage = meta.get("coverage")
        row = meta.get("row")
        return make_item(clean, occluded, mask, int(meta["label"]), meta.get("category", ""),
                         float("nan") if coverage is None else coverage, str(meta.get("id", key)),
                         row if isinstance(row, int) else -1, self.image_size,
                         self.augmenter if self.augment else None, rng)


def _shuffled(samples: Iterator[dict], size: int, rng: np.random.Generator) -> Iterator[dict]:
    """Reservoir-style shuffle buffer: hold ``size`` samples, emit a random one per new sample."""
    buf: list[dict] = []
    for s in samples:
        if len(buf) < size:
            buf.append(s)
            continue
        i = int(rng.integers(len(buf)))
        buf[i], s = s, buf[i]
        yield s
    while buf:
        yield buf.pop(int(rng.integers(len(buf))))


def open_split(data: str | Path, split: str, image_size: int, augment: bool = False, on_the_fly: Any = None,
               landmarks: Any = "aligned", seed: int = 0) -> torch.utils.data.Dataset:
    """The dataset of one split: :class:`ShardStream` for a shard source, else
    :class:`~fer_pi.data.paired.PairedDataset` (a manifest folder)."""
    from .paired import PairedDataset

    if is_shard_source(data):
        if on_the_fly is not None:
            raise DataError(f"--on-the-fly needs a manifest (clean images to occlude), not shards: {data}")
        return ShardStream(data, split, image_size, augment=augment, seed=seed)
    return PairedDataset(data, split, image_size, augment=augment, on_the_fly=on_the_fly, landmarks=landmarks,
                         seed=seed)
