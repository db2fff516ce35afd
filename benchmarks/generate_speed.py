"""Generation speed: pairs/s of ``occsynth generate`` on 100x100 aligned faces (the demo set).

Runs the real pipeline (reader -> landmarks -> Occlude -> PNG files + journal) four ways:
``aligned`` dlib landmarks (RAF-DB reader) and the demo set's provided landmarks (demo reader),
each with 1 and 2 worker processes, and reports:

* end-to-end pairs/s (wall clock, start-up included: template library, dlib model, worker spawn);
* steady-state pairs/s (after the first result arrived);
* the same with the ``aligned`` backend's refinement pass switched off (``refine=0``);
* a per-stage breakdown in ms per pair (decode, landmarks, placement, composite, encode/write),
  summed over workers, i.e. the work one pair costs.

Writes benchmarks/results/generate_speed.json. The machine's load average is recorded before and
after each run: on a shared machine the figures are noisy.

    .venv/bin/python benchmarks/generate_speed.py [--data DIR] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occlusion_synth.generate import STAGES, GenerateConfig, generate  # noqa: E402

TARGET = 300.0  # pairs/s with 2 workers, aligned landmarks (issue 5)


def ensure_demo(data: Path) -> Path:
    """The default demo set (560 faces, 100 px, seed 0), built once with helper B's generator."""
    if not (data / "EmoLabel" / "list_patition_label.txt").is_file():
        from occlusion_synth.demodata import build_demo_dataset

        print(f"building the demo set in {data} ...", flush=True)
        build_demo_dataset(data, cache_dir=REPO / ".cache")
    return data


def run_one(data: Path, landmarks: str, workers: int, limit, scratch: Path, options=None) -> dict:
    src = "demo" if landmarks == "provided" else "rafdb"
    out = scratch / f"{landmarks}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = GenerateConfig(src=src, root=str(data), out=str(out), landmarks=landmarks, workers=workers,
                         limit=limit, seed=0, chunksize=8, landmark_options=dict(options or {}))
    load_before = os.getloadavg()
    s = generate(cfg)
    load_after = os.getloadavg()
    pairs = s.new_pairs
    steady_s = s.seconds - s.first_result_seconds
    stages = {k: 1000.0 * s.stage_seconds.get(k, 0.0) / max(1, pairs) for k in STAGES}
    shutil.rmtree(out, ignore_errors=True)
    return {
        "landmarks": landmarks, "landmark_options": dict(options or {}), "source": src,
        "workers": workers, "pairs": pairs,
        "skipped": s.new_skipped, "seconds": round(s.seconds, 3),
        "startup_seconds": round(s.first_result_seconds, 3),
        "pairs_per_s": round(s.pairs_per_second, 1),
        "steady_pairs_per_s": round((pairs - 1) / steady_s, 1) if steady_s > 0 else None,
        "ms_per_pair_by_stage": {k: round(v, 2) for k, v in stages.items()},
        "ms_per_pair_total": round(sum(stages.values()), 2),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in load_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".cache" / "bench_demo",
                        help="demo set folder (built there if missing)")
    parser.add_argument("--limit", type=int, default=None, help="samples per run (default: all 560)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "generate_speed.json")
    args = parser.parse_args()
    data = ensure_demo(args.data)
    results = []
    with tempfile.TemporaryDirectory(prefix="occsynth_bench_") as scratch:
        runs = [("aligned", 1, None), ("aligned", 2, None), ("provided", 1, None), ("provided", 2, None),
                ("aligned", 2, {"refine": 0})]  # the aligned backend without its refinement pass
        for landmarks, workers, options in runs:
            r = run_one(data, landmarks, workers, args.limit, Path(scratch), options)
            results.append(r)
            print(f"{landmarks:9s} {options or ''} workers={workers}: {r['pairs']} pairs, "
                  f"{r['pairs_per_s']:.1f} pairs/s end-to-end, {r['steady_pairs_per_s']} steady, "
                  f"{r['ms_per_pair_total']:.1f} ms/pair "
                  f"({', '.join(f'{k} {v:.1f}' for k, v in r['ms_per_pair_by_stage'].items())}); "
                  f"load {r['loadavg_before'][0]} -> {r['loadavg_after'][0]}", flush=True)
    best = next(r for r in results if r["landmarks"] == "aligned" and r["workers"] == 2
                and not r["landmark_options"])
    doc = {
        "benchmark": "generate_speed", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "note": "shared machine (several agents); load averages recorded per run"},
        "data": {"path": str(data), "images": "demo set, 100x100 aligned faces (RAF-DB layout)"},
        "target_pairs_per_s_2_workers_aligned": TARGET,
        "target_met": best["pairs_per_s"] >= TARGET,
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json}; target {TARGET:.0f} pairs/s (aligned, 2 workers): "
          f"{'met' if doc['target_met'] else 'NOT met'} ({best['pairs_per_s']} end-to-end, "
          f"{best['steady_pairs_per_s']} steady)")


if __name__ == "__main__":
    main()
