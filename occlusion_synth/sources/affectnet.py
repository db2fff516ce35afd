"""AffectNet reader (manually annotated part), in the dataset's real on-disk layout.

Layout::

    ROOT/training.csv                      -> split "train"
    ROOT/validation.csv                    -> split "test" (AffectNet's test set is not public;
                                              papers, including Pan et al. 2019, test on validation)
    ROOT/Manually_Annotated_Images/<subDirectory_filePath>

CSV columns (header row as distributed): ``subDirectory_filePath, face_x, face_y, face_width,
face_height, facial_landmarks, expression, valence, arousal``. ``facial_landmarks`` holds 136
numbers ``"x1;y1;x2;y2;..."`` (68 iBUG points in image pixels); the face box is
``face_x, face_y, face_width, face_height``. Both are carried on the :class:`Sample` so the
``provided`` (and ``auto``) landmark mode needs no detector.

AffectNet expression codes: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger,
7 Contempt (kept only with ``include_contempt=True``), 8 None, 9 Uncertain, 10 No-Face (always
skipped, with that reason). Codes 0..7 are already in the canonical order.
"""
from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import numpy as np

from ..errors import DatasetFormatError
from ..io import read_image
from ..types import Sample, Skipped
from ._common import CSV_ERROR, PathLike, finite_number, iter_csv_rows, require_dir, safe_id

# AffectNet expression code -> canonical label (identical order for 0..7)
LABEL_MAP: dict[int, int] = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7}
NON_EXPRESSION = {8: "None", 9: "Uncertain", 10: "No-Face"}
CONTEMPT = 7

SPLIT_FILES = {"train": "training.csv", "test": "validation.csv"}
IMAGE_DIR = "Manually_Annotated_Images"
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
# columns this reader needs (valence/arousal are kept in meta when present)
REQUIRED = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
            "facial_landmarks", "expression")


def _wanted_splits(splits: Optional[Union[Iterable[str], str]]) -> list[str]:
    if splits is None:
        return list(SPLIT_FILES)
    if isinstance(splits, str):
        splits = splits.split(",")
    wanted = [s.strip() for s in splits if s.strip()]
    unknown = [s for s in wanted if s not in SPLIT_FILES]
    if unknown or not wanted:
        raise DatasetFormatError(f"splits: AffectNet has the splits train (training.csv) and "
                                 f"test (validation.csv); got {wanted}")
    return [s for s in SPLIT_FILES if s in wanted]


def parse_landmarks(text: str) -> Optional[np.ndarray]:
    """Parse ``"x1;y1;...;x68;y68"`` into ``(68, 2) float32``; None when empty or malformed."""
    parts = [p for p in str(text).replace(",", ";").split(";") if p.strip()]
    if len(parts) != 136:
        return None
    try:
        arr = np.array([finite_number(p) for p in parts], dtype=np.float32).reshape(68, 2)
    except ValueError:
        return None
    return arr if np.all(np.isfinite(arr)) else None


def iter_samples(root: PathLike, splits: Optional[Union[Iterable[str], str]] = None,
                 include_contempt: bool = False) -> Iterator[Union[Sample, Skipped]]:
    """Stream AffectNet as :class:`Sample` / :class:`Skipped` records, one CSV row at a time.

    Args:
        root: the folder holding ``training.csv``, ``validation.csv`` and
            ``Manually_Annotated_Images``.
        splits: ``"train"`` and/or ``"test"`` (list or comma-separated); None = both.
        include_contempt: keep expression 7 (Contempt, canonical 7); skipped otherwise.

    Yields:
        ``Sample(id, split, label, source=image path, load, landmarks=(68, 2) float32 or None,
        box=(4,) float32 x0, y0, x1, y1 or None)``; ``Skipped`` for codes 8..10, excluded contempt,
        malformed rows and missing image files.

    Raises:
        DatasetFormatError: the root, a requested CSV or the image folder is missing, or a CSV
            lacks a required column (checked at call time, before iteration).
    """
    root = require_dir(Path(root), "AffectNet root")
    wanted = _wanted_splits(splits)
    images = require_dir(root / IMAGE_DIR, "AffectNet image folder")
    files = []
    for split in wanted:
        path = root / SPLIT_FILES[split]
        if not path.is_file():
            raise DatasetFormatError(
                f"AffectNet {split} split: expected {path} (pass --splits to use only the other split)")
        try:
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
                header = next(csv.reader(fh), [])
        except (csv.Error, OSError) as exc:
            raise DatasetFormatError(f"{path}: cannot read the CSV header ({exc})") from None
        missing = [c for c in REQUIRED if c not in [h.strip() for h in header]]
        if missing:
            raise DatasetFormatError(f"{path}: missing column(s) {', '.join(missing)}; "
                                     f"expected the AffectNet header {','.join(COLUMNS)}")
        files.append((split, path))
    return _iter(images, files, include_contempt)


def _row_id(rel: str) -> str:
    p = Path(rel)
    return safe_id("_".join(p.with_suffix("").parts), key=rel)


def _iter(images: Path, files: list, include_contempt: bool) -> Iterator[Union[Sample, Skipped]]:
    for split, path in files:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            for line_num, row in iter_csv_rows(fh, skipinitialspace=True):
                where = f"{path}:{line_num}"
                if CSV_ERROR in row:
                    yield Skipped(f"{path.stem}_line{line_num}", where, row[CSV_ERROR])
                    continue
                rel = (row.get("subDirectory_filePath") or "").strip()
                if not rel or None in row or any(row.get(c) is None for c in REQUIRED):
                    yield Skipped(f"{path.stem}_line{line_num}", where,
                                  "malformed row: wrong number of fields or empty file path")
                    continue
                sid = _row_id(rel)
                try:
                    value = finite_number(row["expression"])
                    code = int(value)
                    if code != value:
                        raise ValueError
                except ValueError:
                    yield Skipped(sid, where, f"malformed row: expression {row['expression']!r} "
                                              "is not a number")
                    continue
                if code in NON_EXPRESSION:
                    yield Skipped(sid, where, f"AffectNet class {code} ({NON_EXPRESSION[code]}): "
                                              "not an expression label")
                    continue
                if code == CONTEMPT and not include_contempt:
                    yield Skipped(sid, where, "contempt excluded: AffectNet class 7 "
                                              "(pass include_contempt to keep it)")
                    continue
                if code not in LABEL_MAP:
                    yield Skipped(sid, where, f"unknown AffectNet expression {code} (expected 0..10)")
                    continue
                image = images / rel
                if not image.is_file():
                    yield Skipped(sid, str(image), "image file missing")
                    continue
                try:
                    x, y, w, h = (finite_number(row[c]) for c in ("face_x", "face_y", "face_width", "face_height"))
                    box = np.array([x, y, x + w, y + h], np.float32) if w > 0 and h > 0 else None
                except ValueError:
                    box = None
                meta = {"source_label": code}
                for key in ("valence", "arousal"):
                    try:
                        meta[key] = finite_number(row.get(key) or "")
                    except ValueError:
                        pass
                yield Sample(id=sid, split=split, label=LABEL_MAP[code], source=str(image),
                             load=partial(read_image, image),
                             landmarks=parse_landmarks(row["facial_landmarks"]),
                             box=box, meta=meta)
