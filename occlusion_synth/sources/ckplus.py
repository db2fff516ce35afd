"""CK+ (Extended Cohn-Kanade) reader, in the dataset's real on-disk layout.

Layout (as unpacked from the CK+ distribution)::

    ROOT/cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
    ROOT/Emotion/S005/001/S005_001_00000011_emotion.txt      one float, e.g. "   3.0000000e+00"
    ROOT/Landmarks/S005/001/S005_001_00000011_landmarks.txt  68 lines "x y" (every frame)

Only sequences with an ``Emotion`` file are labelled (327 of 593); for each, the peak (last)
frame is a sample with that label and, with ``include_neutral=True`` (what Pan et al. do),
the first frame is a neutral sample. Unlabelled sequences are yielded as :class:`Skipped`.
CK+ codes 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise
map to the canonical order by :data:`LABEL_MAP`; contempt is kept only with
``include_contempt=True``. Landmarks come from the ``Landmarks`` folder when present.

CK+ has no official split. Subjects (sorted ids) are dealt round-robin into ``folds`` folds;
the subjects of fold ``fold`` are ``test``, the rest ``train``. Every frame of a subject is in
the same split, so the folds are subject-independent (the paper's 10-fold protocol: run once
per ``fold`` in 0..9).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from ..errors import DatasetFormatError, ImageReadError
from ..io import read_image
from ..types import Sample, Skipped
from ._common import IMAGE_EXTENSIONS, PathLike, require_dir

# CK+ code -> canonical label
LABEL_MAP: dict[int, int] = {
    0: 0,  # neutral
    1: 6,  # anger
    2: 7,  # contempt
    3: 5,  # disgust
    4: 4,  # fear
    5: 1,  # happy -> happiness
    6: 2,  # sadness
    7: 3,  # surprise
}
CONTEMPT = 2
IMAGES, EMOTION, LANDMARKS = "cohn-kanade-images", "Emotion", "Landmarks"


def _dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def subject_split(subjects: list[str], fold: int, folds: int) -> dict[str, str]:
    """Map each subject id to ``train``/``test``: sorted subjects dealt round-robin into folds."""
    return {s: ("test" if i % folds == fold else "train") for i, s in enumerate(sorted(subjects))}


def _small_text(path: Path) -> str:
    """A small text file's content (regular files of at most 1 MiB only: no FIFO, device, huge file)."""
    from ..io import read_file_bytes

    return read_file_bytes(path, 1 << 20).decode("ascii", errors="replace")


def read_emotion(path: Path) -> Optional[int]:
    """The CK+ code in an ``*_emotion.txt`` file; None when it is not an integral 0..7."""
    try:
        value = float(_small_text(path).split()[0])
        code = int(round(value))
    except (OSError, IndexError, ValueError, OverflowError, ImageReadError):
        return None
    return code if abs(value - code) < 1e-6 and code in LABEL_MAP else None


def read_landmarks(path: Path) -> Optional[np.ndarray]:
    """The 68 ``x y`` lines of a CK+ landmark file as ``(68, 2) float32``; None if missing/bad."""
    try:
        values = [float(v) for v in _small_text(path).split()]
    except (OSError, ValueError, ImageReadError):
        return None
    if len(values) != 136:
        return None
    arr = np.array(values, dtype=np.float32).reshape(68, 2)
    return arr if np.all(np.isfinite(arr)) else None


def iter_samples(root: PathLike, include_neutral: bool = True, include_contempt: bool = False,
                 fold: int = 0, folds: int = 10,
                 splits: Optional[Union[str, list]] = None) -> Iterator[Union[Sample, Skipped]]:
    """Stream CK+ peak frames (and first frames as neutral) as :class:`Sample` / :class:`Skipped`.

    Args:
        root: the folder holding ``cohn-kanade-images``, ``Emotion`` and ``Landmarks``.
        include_neutral: also yield the first frame of each labelled sequence as neutral.
        include_contempt: keep contempt sequences (canonical 7); skipped otherwise.
        fold: which fold is the test split (0 <= fold < folds).
        folds: number of subject folds (10 for the usual protocol).
        splits: keep only ``train`` and/or ``test``; None keeps both.

    Raises:
        DatasetFormatError: a required folder is missing or fold/folds are invalid.
    """
    root = require_dir(Path(root), "CK+ root")
    images = require_dir(root / IMAGES, "CK+ image folder")
    require_dir(root / EMOTION, "CK+ Emotion folder")
    if not (isinstance(folds, int) and folds >= 2 and isinstance(fold, int) and 0 <= fold < folds):
        raise DatasetFormatError(f"fold/folds: need integers with folds >= 2 and 0 <= fold < folds, "
                                 f"got fold={fold!r}, folds={folds!r}")
    if isinstance(splits, str):
        splits = splits.split(",")
    wanted = None if splits is None else {s.strip() for s in splits if s.strip()}
    if wanted is not None and not wanted <= {"train", "test"}:
        raise DatasetFormatError(f"splits: CK+ folds give the splits train and test; got {sorted(wanted)}")
    subjects = _dirs(images)
    split_of = subject_split([s.name for s in subjects], fold, folds)
    return _iter(root, subjects, split_of, wanted, include_neutral, include_contempt)


def _frames(seq: Path) -> list[Path]:
    return sorted(p for p in seq.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def _sample(frame: Path, root: Path, rel: Path, split: str, label: int, meta: dict) -> Sample:
    lm_path = root / LANDMARKS / rel / f"{frame.stem}_landmarks.txt"
    return Sample(id=frame.stem, split=split, label=label, source=str(frame),
                  load=partial(read_image, frame), landmarks=read_landmarks(lm_path), meta=meta)


def _iter(root: Path, subjects: list[Path], split_of: dict, wanted, include_neutral: bool,
          include_contempt: bool) -> Iterator[Union[Sample, Skipped]]:
    for subject in subjects:
        split = split_of[subject.name]
        if wanted is not None and split not in wanted:
            continue
        for seq in _dirs(subject):
            rel = Path(subject.name) / seq.name
            sid = f"{subject.name}_{seq.name}"
            frames = _frames(seq)
            if not frames:
                yield Skipped(sid, str(seq), "sequence has no image frames")
                continue
            emotion = sorted((root / EMOTION / rel).glob("*_emotion.txt"))
            if not emotion:
                yield Skipped(sid, str(seq), "unlabelled sequence (no Emotion file)")
                continue
            code = read_emotion(emotion[-1])
            if code is None:
                yield Skipped(sid, str(emotion[-1]), "malformed emotion file (expected one integral "
                                                     "code 0..7, e.g. 3.0000000e+00)")
                continue
            if code == CONTEMPT and not include_contempt:
                yield Skipped(sid, str(emotion[-1]), "contempt excluded (pass include_contempt to keep it)")
                continue
            meta = {"source_label": code, "subject": subject.name, "sequence": seq.name,
                    "identity": subject.name}
            yield _sample(frames[-1], root, rel, split, LABEL_MAP[code], dict(meta, frame="peak"))
            if include_neutral and len(frames) > 1:
                yield _sample(frames[0], root, rel, split, 0, dict(meta, frame="first", source_label=0))
