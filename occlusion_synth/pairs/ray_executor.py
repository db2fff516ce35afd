"""The Ray executor: the same :class:`~occlusion_synth.pairs.sample.SampleWorker` calls on Ray actors.

Imports :mod:`.executor` and :mod:`.sample`; ``ray`` itself only inside :meth:`RayExecutor.map`
(Ray is an optional extra: ``pip install occlusion-synth[ray]``).

One actor per worker (``num_cpus=1`` each) builds its ``SampleWorker`` once from the spec (put
into the object store once), so the template library and the landmark model load once per
actor, not once per task. Chunks of ``chunksize`` tasks go to the actors with at most two chunks
in flight per actor, so the task stream is consumed lazily and the driver's memory stays flat.
Workers write the sample files themselves (``spec.config.out`` must be on storage every node
shares) and send back only the :class:`SampleResult` records, which the driver journals.

Failures: an actor whose process dies (killed, out of memory, a lost node) is restarted by Ray
and its unfinished chunks are run again (``max_restarts`` / ``max_task_retries``); files are
written atomically, so a repeated sample rewrites the same bytes. A driver that dies takes its
actors with it (they are owned by the driver); the journal then holds every finished sample and
the same command resumes. A configuration error inside a worker (missing landmark model, broken
templates) ends the run with that one-line message.
"""
from __future__ import annotations

import os
from collections import deque
from typing import Iterable, Iterator, Optional

from ..errors import OcclusionSynthError
from .config import CHUNKSIZE
from .executor import chunks
from .plan import Task
from .sample import SampleResult, SampleWorker, WorkerSpec

INSTALL_HINT = "pip install occlusion-synth[ray]"
IN_FLIGHT_PER_ACTOR = 2
MAX_RESTARTS = 4  # per actor: a worker process that keeps dying is a real problem, not bad luck


def import_ray():
    """``import ray``, or a one-line :class:`OcclusionSynthError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise OcclusionSynthError(f"executor: ray is not installed (--executor ray needs it: {INSTALL_HINT})") from None
    return ray


class _SampleActor:
    """Holds one :class:`SampleWorker` for the actor's lifetime (made into a Ray actor class in ``map``)."""

    def __init__(self, spec: WorkerSpec):
        try:
            import cv2

            cv2.setNumThreads(1)  # parallelism comes from the actors
            self.worker = SampleWorker(spec)
            self.worker.warm_up()
            self.error = None
        except Exception as exc:  # reported by run(), so the driver sees one message, not a dead actor
            self.worker, self.error = None, exc

    def pid(self) -> int:
        return os.getpid()

    def run(self, tasks: list) -> list:
        if self.error is not None:
            raise self.error
        return self.worker.run(tasks)


class RayExecutor:
    """Runs samples on ``workers`` Ray actors (see the module docstring).

    Args:
        workers: number of actors (one CPU each).
        chunksize: tasks per actor call.
        address: Ray cluster to join: ``auto`` (the running cluster: ``RAY_ADDRESS`` or a local
            ``ray start --head``), ``HOST:PORT`` / ``ray://HOST:PORT``, or None = start a local Ray
            on this machine for the run (stopped after it). A Ray already initialised in this
            process (``ray.init`` by the caller) is used as it is.
        init_options: extra keyword arguments for ``ray.init`` when this executor starts or joins Ray.
    """

    def __init__(self, workers: int = 1, chunksize: int = CHUNKSIZE, address: Optional[str] = None,
                 init_options: Optional[dict] = None):
        if workers < 1 or chunksize < 1:
            raise ValueError(f"workers and chunksize must be >= 1, got {workers}, {chunksize}")
        self.workers = int(workers)
        self.chunksize = int(chunksize)
        self.address = address
        self.init_options = dict(init_options or {})

    def _connect(self, ray) -> bool:
        """Initialise Ray unless the caller did; True when this call did (and must shut it down)."""
        if ray.is_initialized():
            return False
        opts = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address is None:
            opts["num_cpus"] = self.workers
        opts.update(self.init_options)
        try:
            ray.init(address=self.address, **opts)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = self.address or "a local Ray"
            raise OcclusionSynthError(f"ray_address: cannot start or reach {where} ({exc})") from None
        return True

    def map(self, spec: WorkerSpec, tasks: Iterable[Task]) -> Iterator[SampleResult]:
        ray = import_ray()
        SampleWorker(spec)  # bad options fail fast here, in the driver
        started = self._connect(ray)
        actor_cls = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(_SampleActor)
        actors: list = []
        try:
            spec_ref = ray.put(spec)  # sent once, shared by every actor on a node
            actors = [actor_cls.remote(spec_ref) for _ in range(self.workers)]
            yield from self._drive(ray, actors, chunks(tasks, self.chunksize))
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if started:
                ray.shutdown()

    def _drive(self, ray, actors: list, stream: Iterator[list]) -> Iterator[SampleResult]:
        from ray.exceptions import RayActorError, RayTaskError

        free = deque(a for _ in range(IN_FLIGHT_PER_ACTOR) for a in actors)
        pending: dict = {}
        exhausted = False
        while True:
            while free and not exhausted:
                chunk = next(stream, None)
                if chunk is None:
                    exhausted = True
                    break
                actor = free.popleft()
                pending[actor.run.remote(chunk)] = actor
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                free.append(pending.pop(ref))
                try:
                    results = ray.get(ref)
                except RayTaskError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    if isinstance(cause, OcclusionSynthError):
                        raise OcclusionSynthError(str(cause)) from None
                    raise OcclusionSynthError(
                        f"a Ray worker failed ({type(cause).__name__}: {cause}); the pairs finished so far "
                        "are kept: re-run the same command to resume") from None
                except RayActorError as exc:
                    raise OcclusionSynthError(
                        f"a Ray worker died {MAX_RESTARTS + 1} times ({str(exc).splitlines()[0]}); the pairs "
                        "finished so far are kept: re-run the same command to resume") from None
                yield from results


__all__ = ["INSTALL_HINT", "RayExecutor", "import_ray"]
