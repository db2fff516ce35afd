"""One sample: decode -> landmarks -> crop -> occlude -> encode -> files, as a :class:`SampleResult`.

Imports :mod:`.config`, :mod:`.plan` (``Task``) and :mod:`.layout` only (and, lazily, the library
below the package: landmarks, crop, ``transforms.occlude_faces`` for the per-face loop).

Executor interface: an executor builds one :class:`SampleWorker` per process from a picklable
:class:`WorkerSpec` (``SampleWorker(spec)``, once: it loads the template library and the
landmark model) and calls it on each :class:`~occlusion_synth.pairs.plan.Task`; both classes
are module-level, so a Ray actor can hold a ``SampleWorker`` exactly like a pool process does.
A call never raises for a problem of the sample (unreadable file, no face ...): that becomes a
``skipped`` row; it raises only for a configuration that cannot work at all (missing landmark
model, broken template library).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional, Protocol, Union

import numpy as np

from ..errors import (DatasetFormatError, ImageReadError, LandmarkBackendError, NoFaceError,
                      OcclusionSynthError, PlacementError, TemplateError)
from .config import PairsConfig
from .layout import pair_id, pair_paths, write_files
from .plan import Task, face_seed

STAGES = ("decode", "landmarks", "placement", "composite", "write")  # keys of SampleResult.timing
UNIFORM_LEVELS = 8  # an image whose pixels all lie within this many grey levels has no face
COPYABLE_SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}


class Occluder(Protocol):
    """What generation needs from an occluder (``transforms.Occlude`` is one)."""

    def get_params(self, image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> Any: ...

    def apply(self, image: np.ndarray, params: Any) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs, picklable.

    Attributes:
        config: the run's options.
        occluder_factory: builds the occluder from the config (a module-level function);
            None = :func:`build_occluder` (the real ``Occlude``).
        library: the run's loaded template library (sent once instead of re-decoded per worker).
    """

    config: PairsConfig
    occluder_factory: Optional[Callable[[PairsConfig], Occluder]] = None
    library: Any = None


@dataclass
class SampleResult:
    """What one task produced (one journal line, see :mod:`.journal`).

    Attributes:
        id: the sample id.
        pairs: manifest rows (dicts keyed by the manifest columns).
        skipped: skipped rows ``{"id", "source", "reason"}``.
        faces: landmarks found, ``[[x0, y0, ..., x67, y67], ...]`` in source pixels, largest
            first (saved to landmarks.jsonl for ``landmarks="cached"`` runs).
        landmark_source: the backend that gave ``faces``.
        frame_landmarks: the first face's landmarks in the written images' pixels (after crop
            and resize), ``[[x, y], ...]`` with 3 decimals, when pairs were made (WebDataset
            samples store them); not journaled by folder outputs.
        timing: seconds per stage (:data:`STAGES`); not journaled.
        retry: an unexpected error: a resumed run tries the sample again.
    """

    id: str
    source: str
    pairs: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    faces: list = field(default_factory=list)
    landmark_source: str = ""
    frame_landmarks: Optional[list] = None
    timing: dict = field(default_factory=dict)
    retry: bool = False

    def record(self) -> dict:
        """The journal line (everything but the timing)."""
        rec = {"id": self.id, "pairs": self.pairs, "skipped": self.skipped}
        if self.faces:
            rec["faces"] = self.faces
            rec["landmark_source"] = self.landmark_source
            rec["source"] = self.source
        if self.retry:
            rec["retry"] = True
        return rec


def build_occluder(cfg: PairsConfig, library: Any = None, categories: Optional[tuple] = None) -> Occluder:
    """The real occluder of a run: ``transforms.Occlude`` configured from the run's options
    (``categories`` overrides the run's)."""
    from ..transforms import Occlude

    kwargs = {"templates": cfg.templates if library is None else library,
              "categories": tuple(categories or cfg.categories), "region": cfg.region}
    if cfg.coverage_range is not None:
        kwargs["coverage_range"] = tuple(cfg.coverage_range)
    try:
        return Occlude(**kwargs)
    except ValueError as exc:  # an option value Occlude rejects: a user error, not a crash
        raise OcclusionSynthError(f"occluder options: {exc}") from None


def build_split_occluders(cfg: PairsConfig, library: Any = None) -> dict:
    """``{"seen": Occluder, "unseen": Occluder}`` for ``holdout_templates``
    (:mod:`occlusion_synth.templates.split`); unseen pairs draw from template categories only."""
    from ..templates import load_templates
    from ..templates.split import SEEN, UNSEEN, split_library

    split = split_library(library if library is not None else load_templates(cfg.templates),
                          cfg.holdout_templates, cfg.seed)
    kinds = tuple(c for c in cfg.categories if c != "block")
    return {SEEN: build_occluder(cfg, split.seen), UNSEEN: build_occluder(cfg, split.unseen, kinds)}


def _exif_rotated(data: bytes) -> bool:
    """True when the file asks to be rotated (then its bytes are not the pixels we used)."""
    if b"Exif" not in data[:65536] and b"eXIf" not in data:
        return False  # no EXIF block at all (JPEG APP1 sits in the first 64 KiB): no parse needed
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.getexif().get(0x0112, 1) not in (1, None)
    except Exception:
        return True


class _Located(NamedTuple):
    """A sample between the two passes of :meth:`SampleWorker.run`."""

    task: Task
    res: SampleResult
    image: np.ndarray
    data: Optional[bytes]  # the source bytes, when the clean image may be stored as they are
    faces: list  # landmarks per face, largest first, in ``image`` pixels


def _skipper(task: Task, res: SampleResult) -> Callable[..., SampleResult]:
    """``skip(reason, pair_id=task.id)``: add a skipped row to ``res`` and return it."""

    def skip(reason: str, pid: str = task.id) -> SampleResult:
        # the source column already names the file: drop it from the message
        reason = reason.replace(f"{task.source}: ", "").replace(f"{task.path}: ", "")
        res.skipped.append({"id": pid, "source": task.source, "reason": reason})
        return res

    return skip


class SampleWorker:
    """Turns tasks into files; one per worker process (see the module docstring)."""

    def __init__(self, spec: WorkerSpec):
        self.cfg = spec.config
        factory = spec.occluder_factory
        self.occluder = factory(self.cfg) if factory is not None else build_occluder(self.cfg, spec.library)
        # holdout_templates: one occluder per template set, chosen per task in _make()
        self._by_set = (build_split_occluders(self.cfg, spec.library)
                        if self.cfg.holdout_templates and factory is None else {})
        if self.cfg.detector in ("dlib", "aligned", "auto"):
            from ..landmarks.dlib_backend import prepare_model

            try:  # the main process builds the cached model file once, so workers only find it
                prepare_model(self.cfg.detector, self.cfg.landmark_options)
            except ValueError as exc:
                raise OcclusionSynthError(f"landmark_options: {exc}") from None

    def warm_up(self) -> None:
        """Load the landmark model now (not on the first sample)."""
        if self.cfg.detector in ("dlib", "aligned", "mediapipe"):
            from ..landmarks import get_backend

            get_backend(self.cfg.detector, **self.cfg.landmark_options)

    def __call__(self, task: Task) -> SampleResult:
        """One task: ``run([task])[0]``."""
        return self.run([task])[0]

    def run(self, tasks: list) -> list[SampleResult]:
        """A chunk of tasks, in two passes: decode and landmarks of every task, then crop,
        occlusion and files of each. Back to back, the landmark model's calls evict each other's
        cache lines less (a dlib predictor call reads ~3 MB scattered over a 66 MB model), and
        the occlusion code is not evicted between them: about 1 ms less per pair than task by
        task (docs/performance.md). A chunk holds its decoded images between the passes (each at
        most ``max_side`` px: 16 x 9 MB at the default 2048). Runs with one BLAS thread
        (:mod:`.blas`); one sample's unexpected error never ends the run."""
        from .blas import single_thread_blas

        with single_thread_blas():
            located = [self._guarded(task, self._locate, task) for task in tasks]
            return [item if isinstance(item, SampleResult) else self._guarded(item.task, self._make, item)
                    for item in located]

    @staticmethod
    def _guarded(task: Task, stage: Callable, arg: Any):
        try:
            return stage(arg)
        except (LandmarkBackendError, TemplateError):
            raise  # the run's configuration cannot work: stop with the message
        except Exception as exc:
            return SampleResult(task.id, task.source, retry=True, skipped=[{
                "id": task.id, "source": task.source,
                "reason": f"internal error: {type(exc).__name__}: {exc} (please report)"}])

    # ------------------------------------------------------------------------------ stages
    def _decode(self, task: Task) -> tuple[np.ndarray, Optional[bytes]]:
        """The image and, when the file may be stored as is, its bytes."""
        from ..io import decode_checked, read_file_bytes

        cfg = self.cfg
        if task.path is not None:
            data = read_file_bytes(task.path, cfg.max_file_size)
            return decode_checked(data, task.path, cfg.max_pixels), data
        if isinstance(task.load, np.ndarray):
            return task.load, None
        if isinstance(task.load, str):
            raise ImageReadError(task.load)
        return task.load(), None

    def _faces(self, task: Task, image: np.ndarray, provided: Optional[np.ndarray],
               scale: float = 1.0) -> tuple[list, str]:
        from ..landmarks import detect

        cfg = self.cfg
        if task.cached_faces is not None:  # saved in source pixels; the image may be downscaled
            return [((np.asarray(f, np.float64) + 0.5) * scale - 0.5).astype(np.float32)
                    for f in task.cached_faces], "cached"
        every = cfg.faces == "all"
        if cfg.landmarks == "provided" or (cfg.landmarks in ("auto", "cached") and provided is not None):
            if provided is None:
                raise NoFaceError("the source provides no landmarks for this image "
                                  "(use landmarks auto or a detector)")
            faces = detect(image, "provided", provided=provided, name=task.source)
        else:
            faces = detect(image, cfg.detector, all_faces=every, name=task.source, **cfg.landmark_options)
        return [f.landmarks for f in faces], faces[0].backend

    def _locate(self, task: Task) -> Union[SampleResult, "_Located"]:
        """Decode and find the faces: a :class:`_Located` for :meth:`_make`, or the finished
        result of a skipped sample."""
        cfg = self.cfg
        res = SampleResult(task.id, task.source)
        skip = _skipper(task, res)
        sid = task.id
        if not sid or "/" in sid or "\\" in sid or sid in (".", ".."):
            return skip(f"unsafe sample id {sid!r} (it must be a file name)")
        t0 = time.perf_counter()
        try:
            image, data = self._decode(task)
        except MemoryError:
            return skip("image too large: out of memory while decoding")
        except ImageReadError as exc:
            msg = str(exc).replace(f"{task.source}: ", "").replace(f"{task.path}: ", "")
            kind = "" if msg.startswith(("image too large", "file too large", "not a regular file")) \
                else "unreadable image: "
            return skip(kind + msg)
        except Exception as exc:  # any decoder failure is a property of this file
            msg = str(exc) if isinstance(exc, OcclusionSynthError) else f"{type(exc).__name__}: {exc}"
            return skip("unreadable image: " + msg)
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            return skip(f"unreadable image: loader returned {getattr(image, 'shape', type(image))}, "
                        "expected (H, W, 3) uint8")
        h, w = image.shape[:2]
        if min(h, w) < cfg.min_side:
            return skip(f"too small: {w}x{h} px (minimum side {cfg.min_side} px)")
        if int(image.max()) - int(image.min()) < UNIFORM_LEVELS:
            return skip(f"no face: uniform image (every pixel within {UNIFORM_LEVELS} grey levels)")
        provided = task.landmarks
        scale = 1.0
        if max(h, w) > cfg.max_side:
            import cv2

            scale = cfg.max_side / max(h, w)
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
            data = None
        if provided is not None and scale != 1.0:
            provided = (np.asarray(provided, np.float32) + 0.5) * scale - 0.5
        t1 = time.perf_counter()
        try:
            faces, backend = self._faces(task, image, provided, scale)
        except NoFaceError as exc:
            return skip(f"no face: {exc}".replace(f"{task.source}: ", ""))
        except (DatasetFormatError, ValueError) as exc:
            return skip(f"bad landmarks: {exc}")
        res.landmark_source = backend
        res.faces = [np.round((np.asarray(f, np.float64) + 0.5) / scale - 0.5, 3).ravel().tolist() for f in faces]
        res.timing.update(decode=t1 - t0, landmarks=time.perf_counter() - t1)
        return _Located(task, res, image, data, faces)

    def _make(self, located: "_Located") -> SampleResult:
        """Crop, occlude, encode and write the pairs of a located sample."""
        cfg = self.cfg
        task, res, image, data, faces = located
        if self._by_set:
            from ..templates.split import template_set

            self.occluder = self._by_set[template_set(task.split, task.id, cfg.seed, cfg.holdout_templates)]
        timing = res.timing
        skip = _skipper(task, res)
        sid = task.id
        t2 = time.perf_counter()
        from ..functional.crop import face_crop

        crop = cfg.crop == "face"
        framed = face_crop(image, faces[0], cfg.crop_margin, cfg.size, crop=crop)
        clean = framed.image
        if min(clean.shape[:2]) < cfg.min_side:
            return skip(f"too small: the face crop is {clean.shape[1]}x{clean.shape[0]} px "
                        f"(minimum side {cfg.min_side} px; size upsamples it)")
        # every face in frame coordinates (the crop/resize moved the first one already)
        lms = [framed.landmarks]
        if cfg.faces == "all" and len(faces) > 1:
            h0, w0 = (framed.box.side,) * 2 if framed.box is not None else image.shape[:2]
            sx, sy = clean.shape[1] / w0, clean.shape[0] / h0
            for f in faces[1:]:
                f = np.asarray(f, np.float64)
                if framed.box is not None:
                    f = f - (framed.box.left, framed.box.top)
                lms.append(((f + 0.5) * (sx, sy) - 0.5).astype(np.float32))
        timing.update(decode=timing["decode"] + time.perf_counter() - t2, placement=0.0, composite=0.0)
        from ..transforms import occlude_faces

        made = []
        for k, seed in enumerate(task.seeds):
            pid = pair_id(sid, k, len(task.seeds))
            # face j draws from face_seed(seed, j): the largest face (j = 0) gets the same
            # occluder with faces "all" as with "largest"
            rngs = [np.random.default_rng(face_seed(seed, j)) for j in range(len(lms))]
            done = occlude_faces(self.occluder, clean, lms, rngs, timing=timing)
            if not done["occluded"]:
                failure = next((f for f in done["failures"] if f), "nothing placed")
                skip(f"placement failed: {failure}", pid)
                continue
            first = next(p for p in done["params"] if getattr(p, "category", "") != "none")
            made.append((pid, seed, first, done["image"], done["mask"], done["occluded"]))
        if not made:
            return res
        t5 = time.perf_counter()
        res.frame_landmarks = np.round(np.asarray(lms[0], np.float64), 3).tolist()
        res.pairs, files = self._encode(task, clean, data, crop, made, res.landmark_source)
        write_files(cfg.out, files)
        timing["write"] = time.perf_counter() - t5
        return res

    def _encode(self, task: Task, clean: np.ndarray, data: Optional[bytes], crop: bool, made: list,
                backend: str):
        from ..io import encode_image
        from ..labels import label_name

        cfg = self.cfg
        cname = "unlabelled" if task.label is None else label_name(task.label)
        # no crop, no resize: the clean image is the source file itself (no decode + re-encode)
        suffix = None
        if data is not None and not crop and cfg.size is None and task.path is not None:
            from pathlib import PurePath

            suffix = COPYABLE_SUFFIXES.get(PurePath(task.path).suffix.lower())
            if suffix is not None and _exif_rotated(data):
                suffix = None
        rows, files = [], []
        for pid, seed, params, occluded, mask, n_faces in made:
            paths = pair_paths(task.split, cname, task.id, pid, cfg.format, clean_suffix=suffix)
            if not files:
                files.append((paths["clean"], data if suffix else encode_image(clean, cfg.format)))
            files.append((paths["mask"], encode_image(mask, "png")))
            files.append((paths["occluded"], encode_image(occluded, cfg.format)))
            frac = getattr(params, "occluded_fraction", None)
            frac = float(np.count_nonzero(mask) / mask.size) if frac is None else float(frac)
            rows.append({
                "id": pid, "split": task.split, "label": "" if task.label is None else int(task.label),
                "label_name": "" if task.label is None else cname, **paths,
                "category": getattr(params, "category", ""), "template": getattr(params, "template", ""),
                "occluded_fraction": f"{frac:.6f}", "landmark_source": backend,
                "seed": str(seed), "faces_occluded": n_faces})
        return rows, files
