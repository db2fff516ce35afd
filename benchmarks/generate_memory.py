"""Peak memory of `occsynth generate` (driver and workers) vs dataset size, per executor and output.

Builds RAF-DB-layout sources of 1x and 10x the demo set (``occsynth demo-data``: 770 faces; the
10x set repeats the demo files under new ids, as hard links), then runs ``occsynth generate``
with ``--landmarks aligned --landmark-option refine=0 --size 64 --workers 2`` for each executor (local, ray) and output
(folder, ``--format webdataset --shard-size 1000``), each in a fresh driver process. A monitor
polls ``/proc`` every 0.2 s and keeps the peak resident set (``VmHWM``, the kernel's high-water
mark) of the driver and of the largest worker: the local pool's processes (the driver's
descendants) or the Ray actors (the driver's descendants titled ``ray::_SampleActor``: the local
Ray the driver starts). The Ray runtime's own
processes (GCS, raylet) are not counted. Writes benchmarks/results/generate_memory.json.

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/generate_memory.py [--scales 1,10]``
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _procs() -> dict[int, tuple[int, str]]:
    """``{pid: (parent pid, command line)}`` of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry)] = (ppid, cmd)
    return out


class Monitor(threading.Thread):
    """Polls the peak RSS of a driver process and of its workers (see the module docstring)."""

    def __init__(self, driver: int, executor: str):
        super().__init__(daemon=True)
        self.driver, self.executor = driver, executor
        self.driver_kib = self.worker_kib = self.workers_seen = 0
        self.stop = threading.Event()
        self._seen: set[int] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            self.driver_kib = max(self.driver_kib, _status_kib(self.driver, "VmHWM"))
            procs = _procs()
            kids, frontier = set(), {self.driver}  # the driver's descendants (its local Ray too)
            while frontier:
                frontier = {p for p, (pp, _) in procs.items() if pp in frontier} - kids
                kids |= frontier
            if self.executor == "ray":
                workers = [p for p in kids if procs[p][1].startswith("ray::_SampleActor")]
            else:
                workers = [p for p in kids if "python" in procs[p][1] and "resource_tracker" not in procs[p][1]]
            for p in workers:
                self._seen.add(p)
                self.worker_kib = max(self.worker_kib, _status_kib(p, "VmHWM"))
            self.workers_seen = len(self._seen)
            time.sleep(0.2)


def make_source(demo: Path, dest: Path, scale: int) -> int:
    """A RAF-DB layout with ``scale`` copies of the demo set (hard links, new ids); returns its size."""
    lines = (demo / "EmoLabel" / "list_patition_label.txt").read_text().split("\n")
    lines = [ln.split() for ln in lines if ln.strip()]
    (dest / "Image" / "aligned").mkdir(parents=True)
    (dest / "EmoLabel").mkdir()
    out = []
    for copy in range(scale):
        for name, label in lines:
            split, num = name[:-4].split("_")
            new = f"{split}_{copy * 100000 + int(num):07d}"
            src = demo / "Image" / "aligned" / f"{name[:-4]}_aligned.jpg"
            os.link(src, dest / "Image" / "aligned" / f"{new}_aligned.jpg")
            out.append(f"{new}.jpg {label}")
    (dest / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(out) + "\n")
    return len(out)


def run(source: Path, out: Path, executor: str, output: str) -> dict:
    cmd = [sys.executable, "-m", "occlusion_synth.cli", "generate", "--src", "rafdb", "--root", str(source),
           "--out", str(out), "--landmarks", "aligned", "--landmark-option", "refine=0", "--size", "64", "--workers", "2",
           "--no-progress",
           "--executor", executor]
    if output == "webdataset":
        cmd += ["--format", "webdataset", "--shard-size", "1000"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    mon = Monitor(proc.pid, executor)
    mon.start()
    log, _ = proc.communicate()
    mon.stop.set()
    mon.join()
    if proc.returncode != 0:
        raise SystemExit(f"generate failed ({executor}, {output}):\n{log[-3000:]}")
    pairs = json.loads((out / "dataset.json").read_text())["counts"]["pairs"]
    return {"executor": executor, "output": output, "pairs": pairs, "seconds": round(time.perf_counter() - t0, 1),
            "driver_peak_rss_mib": round(mon.driver_kib / 1024, 1),
            "worker_peak_rss_mib": round(mon.worker_kib / 1024, 1), "worker_processes_seen": mon.workers_seen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1,10", help="multiples of the demo set (770 faces)")
    ap.add_argument("--executors", default="local,ray")
    ap.add_argument("--outputs", default="folder,webdataset")
    ap.add_argument("--demo", type=Path, default=None, help="an existing `occsynth demo-data` folder")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/generate_memory.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        demo = args.demo or Path(tmp) / "demo"
        if args.demo is None:
            subprocess.run([sys.executable, "-m", "occlusion_synth.cli", "demo-data", str(demo)], cwd=REPO,
                           check=True, capture_output=True)
        for scale in [int(s) for s in args.scales.split(",")]:
            source = Path(tmp) / f"src{scale}"
            n = make_source(demo, source, scale)
            for executor in args.executors.split(","):
                for output in args.outputs.split(","):
                    row = dict(scale=scale, samples=n, **run(source, Path(tmp) / f"out{scale}{executor}{output}",
                                                             executor, output))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    doc = {"benchmark": "generate_memory", "command": "python benchmarks/generate_memory.py --scales " + args.scales,
           "machine": f"{os.cpu_count()} CPUs (shared)", "options": "--landmarks aligned --landmark-option refine=0 --size 64 --workers 2",
           "rows": rows}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
