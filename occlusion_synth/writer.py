"""Paired output on disk: file layout, atomic pair writes, the output lock, cleanup.

Layout (ARCHITECTURE.md)::

    OUT/clean/{split}/{class_name}/{sample_id}.{png|jpg}
    OUT/occluded/{split}/{class_name}/{pair_id}.{png|jpg}
    OUT/mask/{split}/{class_name}/{pair_id}.png        (masks are always PNG: JPEG would blur 0/255)
    OUT/manifest.csv, OUT/skipped.csv, OUT/dataset.json
    OUT/.occsynth/                                      run state: journal, options, lock

``pair_id`` is the sample id, or ``{sample_id}_k{k}`` when several occluded variants are made
per image (``per_image`` > 1); the variants then share one clean file (the manifest's ``clean``
column points every variant to it), so clean images are stored once.

Every file goes through :func:`occlusion_synth.io.atomic_write_bytes` (temporary name in the
same folder, then ``os.replace``): a killed run never leaves a partial file under a final name.
A pair counts as complete when its journal line exists (written after all its files).
"""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import numpy as np

from .errors import (DatasetFormatError, ImageReadError, LandmarkBackendError, NoFaceError,
                     OcclusionSynthError, PlacementError, TemplateError)
from .io import atomic_write_bytes, encode_image
from .labels import label_name
from .manifest import STATE_DIR

PathLike = Union[str, os.PathLike]
KINDS = ("clean", "occluded", "mask")
FORMATS = ("png", "jpg")
OUTPUT_NAMES = KINDS + ("manifest.csv", "skipped.csv", "dataset.json", STATE_DIR)


def pair_id(sample_id: str, k: int, per_image: int) -> str:
    """Id of variant ``k`` of a sample: the sample id itself when ``per_image == 1``."""
    return sample_id if per_image == 1 else f"{sample_id}_k{k}"


def pair_paths(split: str, class_name: str, sample_id: str, pid: str, fmt: str) -> dict[str, str]:
    """Relative (POSIX) paths of one pair's files: ``{"clean": ..., "occluded": ..., "mask": ...}``."""
    folder = f"{split}/{class_name}"
    return {"clean": f"clean/{folder}/{sample_id}.{fmt}",
            "occluded": f"occluded/{folder}/{pid}.{fmt}",
            "mask": f"mask/{folder}/{pid}.png"}


def write_files(out: PathLike, files: list[tuple[str, bytes]]) -> None:
    """Atomically write ``(relative path, bytes)`` items in the given order (clean, masks, occluded)."""
    root = Path(out)
    for rel, data in files:
        atomic_write_bytes(root / rel, data)


class OutputLock:
    """Exclusive lock on an output folder, so two runs never write the same ``OUT`` at once.

    Uses ``fcntl.flock`` on ``OUT/.occsynth/lock`` (released by the OS if the process dies).
    """

    def __init__(self, out: PathLike):
        self.path = Path(out) / STATE_DIR / "lock"
        self._fh = None

    def __enter__(self) -> "OutputLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+b")
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            self._fh = None
            raise OcclusionSynthError(f"--out {self.path.parents[1]}: another occsynth run is writing "
                                      "to this folder (wait for it, or use another --out)") from None
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
        elif path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
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


# ----------------------------------------------------------------------- one sample -> its files
# A task is (sample_id, split, label, source, load, landmarks, box, seeds): ``load`` is the
# reader's loader, a pre-decoded array, or an error message; ``seeds`` holds one seed per variant.
# seconds per stage in each record's "timing" (decode includes the crop/resize)
STAGES = ("decode", "landmarks", "placement", "composite", "write")
_WORKER: dict = {}


def build_occluder(cfg, library=None) -> Any:
    """The real occluder for a run: ``transforms.Occlude`` configured from the run's options.

    ``library``: an already loaded ``TemplateLibrary`` of ``cfg.templates`` (saves reloading it).
    """
    from .transforms import Occlude

    kwargs = {"templates": cfg.templates if library is None else library,
              "categories": tuple(cfg.categories), "region": cfg.region}
    if cfg.coverage is not None:
        kwargs["coverage"] = tuple(cfg.coverage)
    try:
        return Occlude(**kwargs)
    except ValueError as exc:  # an option value Occlude rejects: a user error, not a crash
        raise OcclusionSynthError(f"occluder options: {exc}") from None


@contextmanager
def decode_guard(max_pixels: int):
    """Make Pillow refuse images over ``max_pixels`` before decoding (decompression bombs)."""
    import warnings

    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    # Pillow raises DecompressionBombError above 2x MAX_IMAGE_PIXELS and only warns below
    Image.MAX_IMAGE_PIXELS = max(1, int(max_pixels) // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _decode(load: Any) -> np.ndarray:
    if isinstance(load, np.ndarray):
        return load
    if isinstance(load, str):
        raise ImageReadError(load)
    return load()


def frame(image: np.ndarray, landmarks: np.ndarray, crop: str, margin: float,
          size: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """Crop/resize the image the pair is made from, moving the landmarks along.

    Args:
        image: ``(H, W, 3) uint8 RGB``.
        landmarks: ``(68, 2)`` pixels.
        crop: ``face`` = square around the landmark box (``margin`` of its side added on each
            side, centre raised by 10% of the box height for the forehead, black padding outside
            the frame); ``none`` = whole image.
        size: output side (square images) or longer side (others); None keeps the pixels.

    Returns:
        ``(image (h, w, 3) uint8, landmarks (68, 2) float32)``.
    """
    from .functional.crop import face_crop

    res = face_crop(image, landmarks, margin, size, crop=crop == "face")
    return res.image, res.landmarks


def _locate(image: np.ndarray, provided: Optional[np.ndarray], mode: str, source: str, options: dict):
    from .landmarks import detect

    if mode == "provided" or (mode == "auto" and provided is not None):
        if provided is None:
            raise NoFaceError(f"{source}: the source provides no landmarks for this image "
                              "(use --landmarks auto or a detector)")
        return detect(image, "provided", provided=provided, name=source)[0]
    return detect(image, mode, name=source, **options)[0]


def process_sample(task: tuple, cfg, occluder) -> dict:
    """Turn one task into its files; return its journal record plus ``timing`` (seconds per stage).

    Per-sample problems become ``skipped`` rows with a reason; configuration problems
    (a landmark backend or template library that cannot work at all) are raised.
    """
    sid, split, label, source, load, provided, _box, seeds = task
    result: dict = {"id": sid, "pairs": [], "skipped": [], "timing": {}}
    timing = result["timing"]

    def skip(reason: str, pid: str = sid) -> dict:
        # the source column already names the file: drop it from the message
        reason = reason.replace(f"{source}: ", "")
        result["skipped"].append({"id": pid, "source": source, "reason": reason})
        return result

    if not sid or "/" in sid or "\\" in sid or sid in (".", ".."):
        return skip(f"unsafe sample id {sid!r} (it must be a file name)")
    t0 = time.perf_counter()
    try:
        image = _decode(load)
    except MemoryError:
        return skip("image too large: out of memory while decoding")
    except Exception as exc:  # any decoder failure is a property of this file
        msg = str(exc) if isinstance(exc, OcclusionSynthError) else f"{type(exc).__name__}: {exc}"
        return skip(("image too large: " if "too large" in msg else "unreadable image: ") + msg)
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3):
        return skip(f"unreadable image: loader returned {getattr(image, 'shape', type(image))}, "
                    "expected (H, W, 3) uint8")
    h, w = image.shape[:2]
    if min(h, w) < cfg.min_side:
        return skip(f"too small: {w}x{h} px (minimum side {cfg.min_side} px)")
    lm_in = None if provided is None else np.asarray(provided, np.float32)
    if max(h, w) > cfg.max_side:
        import cv2

        s = cfg.max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        lm_in = None if lm_in is None else (lm_in + 0.5) * s - 0.5
    t1 = time.perf_counter()
    try:
        face = _locate(image, lm_in, cfg.landmarks, source, cfg.landmark_options)
    except NoFaceError as exc:
        return skip(f"no face: {exc}")
    except (DatasetFormatError, ValueError) as exc:
        return skip(f"bad landmarks: {exc}")
    t2 = time.perf_counter()
    clean, lm = frame(image, face.landmarks, cfg.crop, cfg.crop_margin, cfg.size)
    if min(clean.shape[:2]) < cfg.min_side:
        return skip(f"too small: the face crop is {clean.shape[1]}x{clean.shape[0]} px "
                    f"(minimum side {cfg.min_side} px; --size upsamples it)")
    t3 = time.perf_counter()
    timing.update(decode=(t1 - t0) + (t3 - t2), landmarks=t2 - t1, placement=0.0, composite=0.0)
    made = []
    for k, seed in enumerate(seeds):
        pid = pair_id(sid, k, len(seeds))
        t = time.perf_counter()
        try:
            params = occluder.get_params(clean, lm, np.random.default_rng(seed))
        except PlacementError as exc:
            timing["placement"] += time.perf_counter() - t
            skip(f"placement failed: {exc}", pid)
            continue
        t4 = time.perf_counter()
        occluded, mask = occluder.apply(clean, params)
        timing["placement"] += t4 - t
        timing["composite"] += time.perf_counter() - t4
        made.append((pid, seed, params, occluded, mask))
    if not made:
        return result
    t5 = time.perf_counter()
    cname = label_name(label)
    files = []
    for pid, seed, params, occluded, mask in made:
        paths = pair_paths(split, cname, sid, pid, cfg.format)
        if not files:
            files.append((paths["clean"], encode_image(clean, cfg.format)))
        files.append((paths["mask"], encode_image(mask, "png")))
        files.append((paths["occluded"], encode_image(occluded, cfg.format)))
        frac = getattr(params, "occluded_fraction", None)
        frac = float(np.count_nonzero(mask) / mask.size) if frac is None else float(frac)
        result["pairs"].append({
            "id": pid, "split": split, "label": int(label), "label_name": cname, **paths,
            "category": getattr(params, "category", ""), "template": getattr(params, "template", ""),
            "occluded_fraction": f"{frac:.6f}", "landmark_source": face.backend, "seed": str(seed)})
    write_files(cfg.out, files)
    timing["write"] = time.perf_counter() - t5
    return result


def _safe_process(task: tuple, cfg, occluder) -> dict:
    """:func:`process_sample` that never lets one sample's unexpected error end the run."""
    try:
        return process_sample(task, cfg, occluder)
    except (LandmarkBackendError, TemplateError):
        raise  # the run's configuration cannot work: stop with the message
    except Exception as exc:
        # "retry": a resumed run tries the sample again (the error may be fixed by then)
        return {"id": task[0], "pairs": [], "timing": {}, "retry": True, "skipped": [{
            "id": task[0], "source": task[3],
            "reason": f"internal error: {type(exc).__name__}: {exc} (please report)"}]}


def _init_worker(cfg, factory, library) -> None:
    import warnings

    from PIL import Image

    try:
        import cv2

        cv2.setNumThreads(1)  # parallelism comes from the processes
        Image.MAX_IMAGE_PIXELS = max(1, int(cfg.max_pixels) // 2)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        _WORKER["occluder"] = factory(cfg) if factory is not None else build_occluder(cfg, library)
        if cfg.landmarks in ("dlib", "aligned", "mediapipe"):
            from .landmarks import get_backend

            get_backend(cfg.landmarks, **cfg.landmark_options)  # load the model once, up front
    except Exception as exc:  # raising here would make the pool respawn workers forever
        _WORKER["error"] = exc
    _WORKER["cfg"] = cfg


def _run_chunk(tasks: list) -> list[dict]:
    if "error" in _WORKER:
        raise _WORKER["error"]
    return [_safe_process(task, _WORKER["cfg"], _WORKER["occluder"]) for task in tasks]


def _chunks(tasks: Iterable[tuple], size: int) -> Iterator[list]:
    chunk = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_tasks(cfg, tasks: Iterable[tuple], factory: Optional[Callable] = None,
              library=None) -> Iterator[dict]:
    """Process ``tasks`` in this process (``workers == 1``) or in spawned worker processes.

    Tasks go to the workers in chunks of ``cfg.chunksize``; at most ``2 * workers`` chunks are in
    flight, so a huge source streams through in bounded memory. Results come in completion order.
    A worker that dies (killed, out of memory) ends the run with an error instead of a hang; what
    finished is journaled and a re-run resumes. ``library``: the run's loaded template library,
    reused by the in-process occluder.
    """
    # built here too when workers > 1: bad options fail fast in the main process
    occluder = factory(cfg) if factory is not None else build_occluder(cfg, library)
    if cfg.workers == 1:
        with decode_guard(cfg.max_pixels):
            for task in tasks:
                yield _safe_process(task, cfg, occluder)
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    del occluder
    # spawn, not fork: MediaPipe graphs and OpenCV thread pools do not survive a fork
    ctx = mp.get_context("spawn")
    pending: set = set()
    chunks = _chunks(tasks, max(1, int(cfg.chunksize)))
    with decode_guard(cfg.max_pixels), ProcessPoolExecutor(
            cfg.workers, mp_context=ctx, initializer=_init_worker,
            # the loaded library travels pickled (~14 MB, ~20 ms) instead of being re-decoded
            initargs=(cfg, factory, library)) as pool:
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < 2 * cfg.workers:
                    chunk = next(chunks, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        pending.add(pool.submit(_run_chunk, chunk))
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield from fut.result()
        except BrokenProcessPool as exc:
            raise OcclusionSynthError(
                f"a worker process died ({exc}); the pairs finished so far are kept: re-run the same "
                "command to resume (try --workers 1 to see the error)") from None
        finally:
            for fut in pending:
                fut.cancel()
