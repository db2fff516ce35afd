"""RAF-DB "basic" reader, in the dataset's real on-disk layout.

Layout (the label file name carries RAF-DB's own typo, ``patition``)::

    ROOT/EmoLabel/list_patition_label.txt     lines "train_00001.jpg 5"
    ROOT/Image/aligned/train_00001_aligned.jpg  (variant="aligned", 100x100 aligned faces)
    ROOT/Image/original/train_00001.jpg         (variant="original", full photos)

RAF-DB labels ``1..7`` are 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger,
7 Neutral; :data:`LABEL_MAP` maps them to the canonical order of :mod:`occlusion_synth.labels`.
The split comes from the name prefix (``train_`` / ``test_``).

The community re-packaging ``ROOT/train/0..6/*.jpg`` (folder numbers in some other label order)
is not this layout: read it with the ``folder`` reader and a label map, e.g.
``label_map="0=neutral,1=happiness,..."`` matching that copy's README.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from ..errors import DatasetFormatError
from ..types import Sample, Skipped
from ._common import PathLike, image_loader, require_dir, require_file

# RAF-DB label -> canonical label (0 neutral, 1 happiness, 2 sadness, 3 surprise, 4 fear,
# 5 disgust, 6 anger)
LABEL_MAP: dict[int, int] = {
    1: 3,  # Surprise
    2: 4,  # Fear
    3: 5,  # Disgust
    4: 1,  # Happiness
    5: 2,  # Sadness
    6: 6,  # Anger
    7: 0,  # Neutral
}

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
SPLITS = ("train", "test")

# variant -> (image folder under ROOT, file name from the label-file stem)
VARIANTS: dict[str, tuple[Path, str]] = {
    "aligned": (Path("Image") / "aligned", "{stem}_aligned.jpg"),
    "original": (Path("Image") / "original", "{stem}.jpg"),
}

_NAME = re.compile(r"^(train|test)_(\d+)\.jpg$")


def image_path(root: PathLike, name: str, variant: str = "aligned") -> Path:
    """Path of the image for label-file entry ``name`` (e.g. ``train_00001.jpg``) in ``variant``."""
    folder, pattern = VARIANTS[variant]
    return Path(root) / folder / pattern.format(stem=Path(name).stem)


def check_options(variant: str, splits: Optional[Iterable[str]]) -> Optional[frozenset]:
    """Validate reader options; return the requested split set (None = all)."""
    if variant not in VARIANTS:
        raise DatasetFormatError(
            f"variant must be one of {', '.join(VARIANTS)} for RAF-DB, got {variant!r}")
    if splits is None:
        return None
    if isinstance(splits, str):
        splits = [s for s in splits.split(",") if s]
    wanted = frozenset(s.strip() for s in splits)
    if not wanted & set(SPLITS):
        raise DatasetFormatError(
            f"splits: RAF-DB has the splits {', '.join(SPLITS)}; none of {sorted(wanted)} exists")
    return wanted


def iter_samples(root: PathLike, variant: str = "aligned",
                 splits: Optional[Union[Iterable[str], str]] = None) -> Iterator[Union[Sample, Skipped]]:
    """Stream the RAF-DB basic set as :class:`Sample` records (or :class:`Skipped` with a reason).

    The layout is checked at call time; the label file is then read line by line while iterating,
    and image pixels load only when ``Sample.load()`` is called.

    Args:
        root: the RAF-DB ``basic`` folder (the one holding ``EmoLabel`` and ``Image``).
        variant: ``"aligned"`` (``Image/aligned/*_aligned.jpg``, default) or ``"original"``.
        splits: keep only these splits (``"train"``, ``"test"``; a list or a comma-separated
            string); None keeps both.

    Yields:
        ``Sample(id="train_00001", split, canonical label, source=image path, load)`` for each
        valid line; ``Skipped(id, source, reason)`` for a malformed line, an unknown label or a
        missing image file. Blank lines are ignored.

    Raises:
        DatasetFormatError: ``root``, the label file or the image folder is missing, or an
            option value is invalid (the message names the expected path or the option).
    """
    wanted = check_options(variant, splits)
    root = require_dir(Path(root), "RAF-DB root")
    label_file = require_file(root / LABEL_FILE, "RAF-DB label file")
    require_dir(root / VARIANTS[variant][0], f"RAF-DB image folder for variant={variant!r}")
    return _iter(root, label_file, variant, wanted)


def _iter(root: Path, label_file: Path, variant: str,
          wanted: Optional[frozenset]) -> Iterator[Union[Sample, Skipped]]:
    with open(label_file, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            where = f"{label_file}:{lineno}"
            parts = text.split()
            match = _NAME.match(parts[0]) if len(parts) == 2 else None
            if match is None:
                yield Skipped(f"line{lineno}", where,
                              f"malformed label line {text[:80]!r} (expected 'train_00001.jpg 5')")
                continue
            split, stem = match.group(1), Path(parts[0]).stem
            if wanted is not None and split not in wanted:
                continue
            try:
                raf_label = int(parts[1])
            except ValueError:
                raf_label = None
            if raf_label not in LABEL_MAP:
                yield Skipped(stem, where, f"unknown RAF-DB label {parts[1]!r} (expected 1..7)")
                continue
            path = image_path(root, parts[0], variant)
            if not path.is_file():
                yield Skipped(stem, str(path), f"image file missing ({variant} variant)")
                continue
            yield Sample(id=stem, split=split, label=LABEL_MAP[raf_label], source=str(path),
                         load=image_loader(path),
                         meta={"source_label": raf_label, "variant": variant})
