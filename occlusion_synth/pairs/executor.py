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
from .config import CHUNKSIZE
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
    return _WORKER["worker"].run(tasks)


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

    def __init__(self, workers: int = 1, chunksize: int = CHUNKSIZE):
        if workers < 1 or chunksize < 1:
            raise ValueError(f"workers and chunksize must be >= 1, got {workers}, {chunksize}")
        self.workers = int(workers)
        self.chunksize = int(chunksize)

    def map(self, spec: WorkerSpec, tasks: Iterable[Task]) -> Iterator[SampleResult]:
        worker = SampleWorker(spec)  # built here too: bad options fail fast in the main process
        if self.workers == 1:
            for chunk in chunks(tasks, self.chunksize):
                yield from worker.run(chunk)
            return
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        del worker
        # spawn, not fork: MediaPipe graphs and OpenCV thread pools do not survive a fork.
        # The template library is not sent along: each worker loads it from config.templates
        # (0.06-0.2 s) instead of receiving ~15 MB through its start-up pipe, which Python blocks
        # on for good when a worker dies while starting (e.g. a script without a main guard).
        from dataclasses import replace

        spec = replace(spec, library=None)
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
                    "command to resume (try workers=1 to see the error; from a script, call it under "
                    "`if __name__ == \"__main__\":`)") from None
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
