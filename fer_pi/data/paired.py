"""The paired dataset read from ``occsynth generate``'s ``manifest.csv``, and its loader.

Each item is a dict: ``clean`` and ``occluded`` ``(3, S, S) float32`` ImageNet-normalised, ``mask``
``(1, S, S) float32`` 0/1 (1 = occluder pixel), ``label`` int64, ``category`` str,
``occluded_fraction`` float, ``id`` str, ``index`` int. Every random choice (augmentation, on-the-fly
occluder) comes from ``(seed, epoch, index)``, so an epoch is the same whatever the worker count, and
a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler

from occlusion_synth.errors import OcclusionSynthError, PlacementError
from occlusion_synth.io import read_image

from ..errors import DataError
from .transforms import JointAugment, mask_to_tensor, resize, to_tensor

MANIFEST_COLUMNS = ("id", "split", "label", "label_name", "clean", "occluded", "mask", "category",
                    "template", "occluded_fraction", "landmark_source", "seed")
_REQUIRED = ("id", "split", "label", "clean")


def read_manifest(manifest: str | Path) -> list[dict[str, str]]:
    """Rows of ``manifest.csv`` as dicts.

    Raises:
        DataError: missing file, or required columns absent (names them).
    """
    p = Path(manifest)
    if p.is_dir():
        p = p / "manifest.csv"
    if not p.is_file():
        raise DataError(f"{p}: manifest not found (expected OUT/manifest.csv from `occsynth generate`)")
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{p}: manifest lacks column(s) {', '.join(missing)}")
        return list(reader)


def manifest_splits(manifest: str | Path) -> list[str]:
    """The split names present in a manifest (or a shard source), in order of first appearance."""
    from .stream import is_shard_source, shard_splits

    if is_shard_source(manifest):
        return shard_splits(manifest)
    return list(dict.fromkeys(row["split"] for row in read_manifest(manifest)))


def canonical_landmark_fn(image: np.ndarray) -> np.ndarray:
    """Landmarks of an aligned face crop without detection: the canonical mean shape scaled to it."""
    from occlusion_synth.landmarks.schemes import canonical_landmarks

    h, w = image.shape[:2]
    pts = canonical_landmarks(max(h, w))
    return pts * np.array([w / max(h, w), h / max(h, w)], np.float32)


class PairedDataset(Dataset):
    """(clean, occluded, mask, label) items of one split of a generated dataset.

    Args:
        manifest: ``OUT/manifest.csv`` (or ``OUT``); paths inside are relative to its folder.
        split: ``"train"``, ``"val"``, ``"test"``, ...
        image_size: side ``S`` the images are resized to.
        augment: joint random crop / flip / colour (training).
        on_the_fly: an ``occlusion_synth.transforms.Occlude`` (anything with
            ``__call__(image, landmarks, rng) -> {"image", "mask", "params"}``) applied to the clean
            image at load time; the manifest's occluded/mask columns are then ignored.
        landmarks: for ``on_the_fly``: ``"aligned"`` (68-point predictor on the whole aligned crop),
            ``"canonical"`` (mean shape, no model) or a function ``image -> (68, 2) float32``.
        seed: base of the per-item random streams.
        augmenter: the :class:`JointAugment` to use (default settings otherwise).

    Raises:
        DataError: missing manifest/columns, empty split (names the splits present).
    """

    def __init__(self, manifest: str | Path, split: str, image_size: int, augment: bool = False,
                 on_the_fly: Any = None, landmarks: str | Callable = "aligned", seed: int = 0,
                 augmenter: JointAugment | None = None):
        p = Path(manifest)
        self.manifest = p / "manifest.csv" if p.is_dir() else p
        self.root = self.manifest.parent
        rows = read_manifest(self.manifest)
        self.rows = [r for r in rows if r["split"] == split]
        if not self.rows:
            present = ", ".join(dict.fromkeys(r["split"] for r in rows)) or "none"
            raise DataError(f"{self.manifest}: no rows for split {split!r} (splits present: {present})")
        self.split = split
        self.image_size = int(image_size)
        self.augment = augment
        self.augmenter = augmenter or JointAugment()
        self.on_the_fly = on_the_fly
        self.landmarks = landmarks
        self.seed = int(seed)
        self.epoch = 0
        self._landmark_cache: dict[int, np.ndarray] = {}
        try:
            self.labels = [int(r["label"]) for r in self.rows]
        except ValueError as exc:
            raise DataError(f"{self.manifest}: non-integer label ({exc})") from None
        if on_the_fly is None:
            for col in ("occluded", "mask"):
                if not self.rows[0].get(col):
                    raise DataError(f"{self.manifest}: column {col!r} is empty; generate pairs or use on_the_fly")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's random streams (augmentation and on-the-fly occluders)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, rel: str) -> np.ndarray:
        path = self.root / rel
        try:
            return read_image(path)
        except OcclusionSynthError as exc:
            raise DataError(f"{self.manifest}: {exc}") from None

    def _landmarks(self, index: int, image: np.ndarray) -> np.ndarray:
        if index not in self._landmark_cache:
            if callable(self.landmarks):
                pts = self.landmarks(image)
            elif self.landmarks == "canonical":
                pts = canonical_landmark_fn(image)
            else:
                from occlusion_synth.landmarks import detect

                pts = detect(image, self.landmarks, name=self.rows[index]["clean"])[0].landmarks
            self._landmark_cache[index] = np.asarray(pts, np.float32)
        return self._landmark_cache[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        clean = self._read(row["clean"])
        category, fraction = row.get("category", ""), row.get("occluded_fraction") or "nan"
        if self.on_the_fly is not None:
            try:
                out = self.on_the_fly(clean, self._landmarks(index, clean), rng)
                occluded, mask = out["image"], out["mask"]
                category, fraction = out["params"].category, out["params"].occluded_fraction
            except PlacementError:
                # No placement met the constraints: keep the pair clean rather than stop training.
                occluded, mask, category, fraction = clean, np.zeros(clean.shape[:2], np.uint8), "none", 0.0
        else:
            occluded = self._read(row["occluded"])
            mask = self._read(row["mask"])[..., 0]
            if occluded.shape != clean.shape:
                raise DataError(f"{self.root / row['occluded']}: size {occluded.shape[:2]} differs from "
                                f"its clean image {clean.shape[:2]}")
        return make_item(clean, occluded, mask, int(row["label"]), category, fraction, row["id"], index,
                         self.image_size, self.augmenter if self.augment else None, rng)


def make_item(clean: np.ndarray, occluded: np.ndarray, mask: np.ndarray, label: int, category: str,
              fraction: Any, sample_id: str, index: int, size: int, augmenter: JointAugment | None,
              rng: np.random.Generator) -> dict[str, Any]:
    """The training item of one decoded pair (shared by the folder and the shard loaders).

    Args:
        clean, occluded: ``(H, W, 3) uint8 RGB``; mask: ``(H, W) uint8`` 0/255.
        size: output side ``S``; augmenter: joint augmentation, or None for none.
        rng: the item's random stream (augmentation parameters).

    Returns:
        ``clean``/``occluded`` ``(3, S, S) float32``, ``mask`` ``(1, S, S) float32``, ``label`` int64,
        ``category``, ``occluded_fraction``, ``id``, ``index``.
    """
    clean, occluded, mask = resize(clean, size), resize(occluded, size), resize(mask, size, nearest=True)
    if augmenter is not None:
        (clean, occluded), mask = augmenter.apply([clean, occluded], mask, augmenter.get_params(rng, size))
    return {"clean": to_tensor(clean), "occluded": to_tensor(occluded), "mask": mask_to_tensor(mask),
            "label": torch.tensor(int(label), dtype=torch.int64), "category": category or "",
            "occluded_fraction": float(fraction), "id": sample_id, "index": index}


class EpochSampler(Sampler[int]):
    """Single-process sampler whose order depends only on ``(seed, epoch)`` (resumable)."""

    def __init__(self, n: int, shuffle: bool, seed: int):
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def build_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0,
                 num_workers: int = 0, distributed: bool = False, drop_last: bool = False,
                 pin_memory: bool = False) -> DataLoader:
    """A DataLoader with a resumable sampler (``DistributedSampler`` under DDP).

    Call :func:`set_loader_epoch` before each epoch.
    """
    if isinstance(dataset, IterableDataset):  # shard stream: it splits and shuffles itself
        dataset.configure(batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                          num_workers=num_workers)
        return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, drop_last=drop_last,
                          pin_memory=pin_memory, persistent_workers=False)
    if distributed:
        sampler: Sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = EpochSampler(len(dataset), shuffle, seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=drop_last, pin_memory=pin_memory,
                      persistent_workers=False)


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Set the epoch of the loader's sampler and dataset (order and augmentation streams)."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
