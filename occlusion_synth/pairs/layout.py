"""Where a paired output's files live, the output lock, and safe checks/cleanup of ``OUT``.

Lowest layer of :mod:`occlusion_synth.pairs` with :mod:`.config` (imports neither).

Layout::

    OUT/clean/{split}/{class_name}/{sample_id}.{png|jpg}
    OUT/occluded/{split}/{class_name}/{pair_id}.{png|jpg}
    OUT/mask/{split}/{class_name}/{pair_id}.png        (masks are always PNG: JPEG would blur 0/255)
    OUT/manifest.csv, OUT/skipped.csv, OUT/landmarks.jsonl, OUT/dataset.json
    OUT/.occsynth/                                      run state: journal, options, lock

``pair_id`` is the sample id, or ``{sample_id}_k{k}`` when several occluded variants are made
per image; the variants then share one clean file. Every file is written atomically
(:func:`occlusion_synth.io.atomic_write_bytes`). Another storage backend (e.g. WebDataset
shards) replaces :func:`write_files` and keeps the relative names as its keys.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Iterable, Union

from ..errors import OcclusionSynthError
from ..io import atomic_write_bytes

PathLike = Union[str, os.PathLike]
KINDS = ("clean", "occluded", "mask")
STATE_DIR = ".occsynth"
JOURNAL_NAME = "journal.jsonl"
OPTIONS_NAME = "options.json"
INDEX_NAMES = ("manifest.csv", "skipped.csv", "landmarks.jsonl", "dataset.json")
OUTPUT_NAMES = KINDS + INDEX_NAMES + (STATE_DIR,)


def pair_id(sample_id: str, k: int, per_image: int) -> str:
    """Id of variant ``k`` of a sample: the sample id itself when ``per_image == 1``."""
    return sample_id if per_image == 1 else f"{sample_id}_k{k}"


def pair_paths(split: str, class_name: str, sample_id: str, pid: str, fmt: str,
               clean_suffix: str | None = None) -> dict[str, str]:
    """Relative (POSIX) paths of one pair's files: ``{"clean": ..., "occluded": ..., "mask": ...}``.

    ``clean_suffix`` overrides the clean file's suffix (a clean image stored as the source bytes).
    """
    folder = f"{split}/{class_name}"
    return {"clean": f"clean/{folder}/{sample_id}.{clean_suffix or fmt}",
            "occluded": f"occluded/{folder}/{pid}.{fmt}",
            "mask": f"mask/{folder}/{pid}.png"}


def write_files(out: PathLike, files: Iterable[tuple[str, bytes]]) -> None:
    """Atomically write ``(relative path, bytes)`` items in the given order (clean, masks, occluded)."""
    root = os.fspath(out)
    for rel, data in files:
        atomic_write_bytes(os.path.join(root, rel), data)


def os_error_message(path: PathLike, exc: OSError, argument: str = "out") -> str:
    """One line for an OS error on the output (full disk, read-only, permission ...)."""
    reason = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
              errno.EACCES: "permission denied", errno.EDQUOT: "disk quota exceeded",
              errno.ENOTDIR: "a part of the path is a file, not a folder"}.get(exc.errno, exc.strerror or str(exc))
    return f"{argument}: cannot write {path}: {reason}"


def prepare_out(out: PathLike, argument: str = "out") -> Path:
    """Create ``out`` (and its state folder) or raise a one-line error naming ``argument``."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise OcclusionSynthError(f"{argument}: {p} exists and is not a folder")
    try:
        (p / STATE_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OcclusionSynthError(os_error_message(p, exc, argument)) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise OcclusionSynthError(f"{argument}: cannot write {p}: permission denied")
    return p


def is_own_output(out: PathLike) -> bool:
    """True if ``out`` is empty or holds only what an occsynth generate/merge writes."""
    p = Path(out)
    if not p.exists():
        return True
    if not p.is_dir():
        return False
    names = {c.name for c in p.iterdir()}
    if names <= {STATE_DIR}:
        return not (p / STATE_DIR).is_dir() or {c.name for c in (p / STATE_DIR).iterdir()} <= {"lock"}
    return (p / STATE_DIR / OPTIONS_NAME).is_file() and names <= set(OUTPUT_NAMES)


class OutputLock:
    """Exclusive lock on an output folder, so two runs never write the same ``OUT`` at once.

    Uses ``fcntl.flock`` on ``OUT/.occsynth/lock`` (released by the OS if the process dies).
    """

    def __init__(self, out: PathLike):
        self.path = Path(out) / STATE_DIR / "lock"
        self._fh = None

    def __enter__(self) -> "OutputLock":
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a+b")
        except OSError as exc:
            raise OcclusionSynthError(os_error_message(self.path.parents[1], exc)) from None
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            self._fh = None
            raise OcclusionSynthError(f"out: another occsynth run is writing to {self.path.parents[1]} "
                                      "(wait for it, or use another output folder)") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def remove_outputs(out: PathLike) -> None:
    """Delete what a previous run wrote in ``out`` (only the names this tool writes; the lock stays)."""
    root = Path(out)
    for name in OUTPUT_NAMES:
        path = root / name
        if name == STATE_DIR and path.is_dir():
            for child in path.iterdir():
                if child.name != "lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_stale_temp(out: PathLike) -> int:
    """Delete temporary files (``.NAME.XXXX.tmp``) a killed run left; return how many."""
    removed = 0
    for kind in KINDS:
        for dirpath, _, filenames in os.walk(Path(out) / kind):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
                    except FileNotFoundError:
                        pass
    return removed


def copy_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically (a hard link when possible: same bytes, no extra space)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_file() and os.path.samefile(src, dst):
        return
    tmp = dst.with_name(f".{dst.name}.merge.tmp")
    try:
        if tmp.exists():
            tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
