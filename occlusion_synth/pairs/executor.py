"""Where samples are processed: the :class:`Executor` interface and the local process pool.

Imports :mod:`.config`, :mod:`.plan` and :mod:`.sample`.

Two executors: :class:`LocalExecutor` here and :class:`~occlusion_synth.pairs.ray_executor.RayExecutor`
(imported only when chosen: Ray is optional); :func:`build_executor` picks one from the options.

Interface (for another engine)::

    class Executor(Protocol):
        def map(self, spec: WorkerSpec, tasks: Iterable[Task]) -> Iterator[SampleResult]: ...

``map`` consumes ``tasks`` lazily (never the whole stream: memory must stay flat in the
dataset size), builds one :class:`~occlusion_synth.pairs.sample.SampleWorker` per worker from
the picklable ``spec`` and yields each task's :class:`~occlusion_synth.pairs.sample.SampleResult`
in any order (the journal sorts). Results only travel back: workers write the sample files
themselves (into ``spec.config.out``, which a cluster must share) and the caller journals them.
An executor raises :class:`~occlusion_synth.errors.OcclusionSynthError` when a worker dies, so
the run stops with what finished journaled (a re-run resumes), and makes sure its workers exit
when the main process dies.
"""
from __future__ import annotations

import os
import threading
from typing import Iterable, Iterator, Protocol

from ..errors import OcclusionSynthError
from .plan import Task
from .sample import SampleResult, SampleWorker, WorkerSpec


class Executor(Protocol):
    """Runs :class:`SampleWorker` calls over a task stream (see the module docstring)."""

    def map(self, spec: WorkerSpec, tasks: Iterable[Task]) -> Iterator[SampleResult]: ...


_WORKER: dict = {}


def _exit_with_parent(parent: int) -> None:
    """End this worker when the main process dies (Linux: at once; elsewhere within 0.5 s)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass

    def watch() -> None:
        import time

        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="occsynth-parent-watch").start()


def _init_worker(spec: WorkerSpec, parent: int) -> None:
    _exit_with_parent(parent)
    try:
        import cv2

        cv2.setNumThreads(1)  # parallelism comes from the processes
        worker = SampleWorker(spec)
        worker.warm_up()
        _WORKER["worker"] = worker
    except Exception as exc:  # raising here would make the pool respawn workers forever
        _WORKER["error"] = exc


def _run_chunk(tasks: list) -> list[SampleResult]:
    if "error" in _WORKER:
        raise _WORKER["error"]
    worker = _WORKER["worker"]
    return [run_task(worker, task) for task in tasks]


class LandmarkRecorder:
    """Wraps an occluder and remembers the landmarks its first ``get_params`` call got.

    That call is always the first face of the first pair, in the framed (cropped, resized)
    image's pixels, so a WebDataset output can store landmarks that match its images.
    """

    def __init__(self, inner):
        self.inner = inner
        self.first = None

    def get_params(self, image, landmarks, rng):
        if self.first is None:
            self.first = landmarks
        return self.inner.get_params(image, landmarks, rng)

    def apply(self, image, params):
        return self.inner.apply(image, params)

    def take_landmarks(self):
        """The recorded ``(68, 2)`` landmarks (or None), and forget them."""
        lm, self.first = self.first, None
        return lm


def recording_occluder(factory, library, cfg) -> LandmarkRecorder:
    """``occluder_factory`` for a :class:`LandmarkRecorder` around ``factory`` (None = the real occluder)."""
    from .sample import build_occluder

    return LandmarkRecorder(factory(cfg) if factory is not None else build_occluder(cfg, library))


def run_task(worker: SampleWorker, task: Task) -> SampleResult:
    """``worker(task)``; with a :class:`LandmarkRecorder` occluder, the framed landmarks of the
    result's first face ride along as ``result.frame_landmarks`` (``[[x, y], ...]``, 3 decimals)."""
    take = getattr(worker.occluder, "take_landmarks", None)
    if take is None:
        return worker(task)
    take()
    res = worker(task)
    lm = take()
    if lm is not None and res.pairs:
        res.frame_landmarks = [[round(float(x), 3), round(float(y), 3)] for x, y in lm]
    return res


def chunks(tasks: Iterable, size: int) -> Iterator[list]:
    """Group an iterable into lists of ``size`` (the last one shorter), lazily."""
    chunk = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class LocalExecutor:
    """This machine: in-process (``workers == 1``) or ``workers`` spawned processes.

    Tasks go to the workers in chunks of ``chunksize``; at most ``2 * workers`` chunks are in
    flight, so a huge source streams through in bounded memory. A worker that dies (killed, out
    of memory) ends the run with an error instead of a hang.
    """

    def __init__(self, workers: int = 1, chunksize: int = 4):
        if workers < 1 or chunksize < 1:
            raise ValueError(f"workers and chunksize must be >= 1, got {workers}, {chunksize}")
        self.workers = int(workers)
        self.chunksize = int(chunksize)

    def map(self, spec: WorkerSpec, tasks: Iterable[Task]) -> Iterator[SampleResult]:
        worker = SampleWorker(spec)  # built here too: bad options fail fast in the main process
        if self.workers == 1:
            yield from (run_task(worker, task) for task in tasks)
            return
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        del worker
        # spawn, not fork: MediaPipe graphs and OpenCV thread pools do not survive a fork
        ctx = mp.get_context("spawn")
        pending: set = set()
        stream = chunks(tasks, self.chunksize)
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(spec, os.getpid())) as pool:
            try:
                exhausted = False
                while True:
                    while not exhausted and len(pending) < 2 * self.workers:
                        chunk = next(stream, None)
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
                    "command to resume (try workers=1 to see the error)") from None
            finally:
                for fut in pending:
                    fut.cancel()


def build_executor(cfg) -> Executor:
    """The executor a :class:`~occlusion_synth.pairs.config.PairsConfig` asks for (``executor``,
    ``workers``, ``chunksize``, ``ray_address``)."""
    if cfg.executor == "ray":
        from .ray_executor import RayExecutor, import_ray

        import_ray()  # a missing Ray fails before the output folder is touched
        return RayExecutor(cfg.workers, cfg.chunksize, cfg.ray_address)
    return LocalExecutor(cfg.workers, cfg.chunksize)
