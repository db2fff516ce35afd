"""A/B of generation speed: two checkouts of this project, the same command, rounds taking turns.

On a shared host the speed of one checkout moves by 1.5x within an hour (docs/performance.md,
phase 4), so two versions are compared only inside one run, alternating (A B, B A, A B, ...),
each round being a short (``--short`` faces) and a full run into new folders (nothing is
deleted until the end; see ``generate_speed.py``); steady pairs/s = extra pairs / extra seconds,
CPU ms per pair from ``getrusage(RUSAGE_CHILDREN)`` the same way.

    git worktree add /tmp/old 064b371
    .venv/bin/python benchmarks/ab_generate.py --old /tmp/old --new . --scratch /dev/shm --rounds 4

Writes benchmarks/results/ab_generate.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(checkout: Path, data: Path, out: Path, limit: int, workers: int) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    cmd = [sys.executable, "-m", "occlusion_synth.cli", "generate", "--src", "rafdb", "--root", str(data),
           "--out", str(out), "--landmarks", "aligned", "--workers", str(workers), "--limit", str(limit),
           "--seed", "0", "--no-progress"]
    t, c = time.perf_counter(), _cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=checkout)
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}: generate failed\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t, _cpu() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout A (e.g. a git worktree)")
    parser.add_argument("--new", type=Path, default=REPO, help="checkout B")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "occsynth_bench_demo_2240",
                        help="demo set (occsynth demo-data --per-class 300)")
    parser.add_argument("--faces", type=int, default=1120)
    parser.add_argument("--short", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--scratch", type=Path, default=None, help="where outputs go (e.g. /dev/shm)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "ab_generate.json")
    args = parser.parse_args()
    if not (args.data / "EmoLabel" / "list_patition_label.txt").is_file():
        subprocess.run([sys.executable, "-m", "occlusion_synth.cli", "demo-data", str(args.data),
                        "--per-class", "300", "-q"], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    commits = {k: subprocess.run(["git", "-C", str(v), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip() for k, v in checkouts.items()}
    rounds = {k: [] for k in checkouts}
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="occsynth_ab_", dir=args.scratch) as scratch:
        k = 0
        for r in range(args.rounds):
            for name in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
                k += 1
                ts, cs = run(checkouts[name], args.data, Path(scratch) / f"{k}_short", args.short, args.workers)
                tf, cf = run(checkouts[name], args.data, Path(scratch) / f"{k}_full", args.faces, args.workers)
                extra = args.faces - args.short
                rounds[name].append({"steady_pairs_per_s": round(extra / (tf - ts), 1),
                                     "cpu_ms_per_pair": round(1000 * (cf - cs) / extra, 3)})
                print(name, rounds[name][-1], flush=True)
    summary = {name: {"median_steady_pairs_per_s": statistics.median(x["steady_pairs_per_s"] for x in v),
                      "median_cpu_ms_per_pair": statistics.median(x["cpu_ms_per_pair"] for x in v)}
               for name, v in rounds.items()}
    doc = {"benchmark": "ab_generate", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "commits": commits,
           "scratch": str(args.scratch or tempfile.gettempdir()), "faces": args.faces, "short": args.short,
           "workers": args.workers, "loadavg_before": [round(v, 2) for v in load0],
           "loadavg_after": [round(v, 2) for v in os.getloadavg()], "rounds": rounds, "summary": summary}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json}: {summary}")


if __name__ == "__main__":
    main()
