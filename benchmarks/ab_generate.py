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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from generate_speed import cpu_per_pair, marginal, run_generate  # noqa: E402


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
        for name, checkout in checkouts.items():  # untimed warm-ups: a checkout's first run is slow
            run_generate(args.data, Path(scratch) / f"warm_up_{name}", args.workers, args.short, [], checkout=checkout)
        k = 0
        for r in range(args.rounds):
            for name in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
                k += 1
                short = run_generate(args.data, Path(scratch) / f"{k}_short", args.workers, args.short, [],
                                     checkout=checkouts[name])
                full = run_generate(args.data, Path(scratch) / f"{k}_full", args.workers, args.faces, [],
                                    checkout=checkouts[name])
                rounds[name].append({  # None when the full run was not slower (too few faces)
                    "steady_pairs_per_s": marginal(short, full), "cpu_ms_per_pair": cpu_per_pair(short, full),
                    "file_create_ms": [short["file_create_ms"], full["file_create_ms"]]})
                print(name, rounds[name][-1], flush=True)
    def median(values) -> float | None:
        values = [x for x in values if x is not None]
        return statistics.median(values) if values else None

    summary = {name: {"median_steady_pairs_per_s": median(x["steady_pairs_per_s"] for x in v),
                      "median_cpu_ms_per_pair": median(x["cpu_ms_per_pair"] for x in v)}
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
