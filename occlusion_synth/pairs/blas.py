"""One BLAS thread while a sample is made: generation is parallel across processes, not inside one.

numpy's OpenBLAS starts one thread per core. On the tiny problems of one sample (the ~30x30
thin-plate-spline solves, 2x2 shading fits, ``(N, 3) @ (3,)`` luma products) its threads cost far
more than they save: measured here, a 33x33 ``np.linalg.solve`` took 1.5 ms of CPU time (2.7 ms
wall) with 2 OpenBLAS threads on a loaded 2-core machine and 14 us with one. OpenCV is limited to
one thread in the workers the same way (``cv2.setNumThreads(1)``).

:func:`single_thread_blas` sets every OpenBLAS loaded in this process (numpy's, OpenCV's) to one
thread and restores the previous counts on exit, so a library caller's own settings survive.
It finds the libraries through ``/proc/self/maps`` (Linux); elsewhere, or with another BLAS, it
does nothing (set ``OPENBLAS_NUM_THREADS=1`` / ``OMP_NUM_THREADS=1`` there instead).
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from typing import Iterator, Optional

_SUFFIXES = ("", "64_", "_64")
_LIBS: Optional[list] = None  # [(get, set), ...] once found


def _openblas_controls() -> list:
    """``(get_num_threads, set_num_threads)`` ctypes functions of each loaded OpenBLAS."""
    global _LIBS
    if _LIBS is not None:
        return _LIBS
    found = []
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh
                            if "openblas" in line.lower() and ".so" in line.split()[-1]})
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in _SUFFIXES:
            get = getattr(lib, f"openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                found.append((get, put))
                break
    _LIBS = found
    return found


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run the ``with`` body with one OpenBLAS thread (previous counts restored after)."""
    controls = _openblas_controls()
    before = [get() for get, _ in controls]
    for (_, put), n in zip(controls, before):
        if n != 1:
            put(1)
    try:
        yield
    finally:
        for (_, put), n in zip(controls, before):
            if n != 1:
                put(n)
