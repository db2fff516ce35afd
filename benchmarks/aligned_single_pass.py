"""What dropping the ``aligned`` backend's refinement pass costs in accuracy, and saves in time.

The ``aligned`` backend runs dlib's 68-point predictor on the whole frame, then once more on the
box dlib's HOG detector would draw around those landmarks, unless the first pass finds the eyes
inside ``one_pass_band`` (default ``auto``: 0.33-0.43 frame widths apart). This script compares
one pass (``refine=0``), two (``one_pass_band="none"``) and the default rule, on aligned crops of
the five test photos (the framings of benchmarks/landmark_accuracy.py: RAF-DB-like, tight,
loose, 48 px grey; each photo also mirrored; three eye-position jitters), on a sweep of framings
(eye distance 0.26-0.46 of the frame, three eye heights) and on demo-set faces:

* the change of dropping the pass: mean point-to-point distance between the 1-pass and the
  2-pass landmarks, over the 68 points, in inter-ocular distances (of the 2-pass result);
* the error of each against dlib with detection on the full photo (the reference of
  docs/landmarks.md), same unit;
* the time of one ``aligned`` call with 1 and 2 passes on a 100 px crop (median, warm).

    .venv/bin/python benchmarks/aligned_single_pass.py [--demo DIR]

Writes benchmarks/results/aligned_single_pass.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from landmark_accuracy import FRAMINGS, JITTER, nme, resized  # noqa: E402

from occlusion_synth.io import read_image  # noqa: E402
from occlusion_synth.landmarks import detect, get_backend  # noqa: E402
from occlusion_synth.landmarks.align import aligned_crop, transform_points  # noqa: E402
from occlusion_synth.photos import DEMO_PHOTOS, fetch_photos  # noqa: E402


def summary(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": round(float(v.mean()), 4), "p95": round(float(np.percentile(v, 95)), 4),
            "max": round(float(v.max()), 4), "n": int(v.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=None, help="a demo set folder (occsynth demo-data)")
    parser.add_argument("--demo-limit", type=int, default=280)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "aligned_single_pass.json")
    args = parser.parse_args()
    one, two = get_backend("aligned", refine=0), get_backend("aligned", one_pass_band="none")
    auto = get_backend("aligned")
    paths = fetch_photos(REPO / ".cache")
    per_framing = {f: {"change": [], "one_vs_ref": [], "two_vs_ref": [], "auto_vs_ref": [], "auto_one_pass": []}
                   for f in FRAMINGS}
    sweep = {round(f, 2): {"one_vs_ref": [], "two_vs_ref": [], "auto_vs_ref": [], "auto_one_pass": []}
             for f in np.arange(0.26, 0.47, 0.02)}
    for name in DEMO_PHOTOS:
        small = resized(read_image(paths[name]), 500)
        for flip in (0, 1):
            im = np.ascontiguousarray(small[:, ::-1]) if flip else small
            ref_full = detect(im, "dlib")[0].landmarks
            for framing, (size, eye_y, iod_frac) in FRAMINGS.items():
                for dy, di in JITTER:
                    crop, matrix = aligned_crop(im, ref_full, size, eye_y + dy, iod_frac + di)
                    if framing.endswith("gray"):
                        crop = np.repeat(crop.mean(axis=2, keepdims=True).round().astype(np.uint8), 3, axis=2)
                    ref = transform_points(ref_full, matrix)
                    a, b = one.detect(crop)[0].landmarks, two.detect(crop)[0].landmarks
                    c = auto.detect(crop)[0].landmarks
                    row = per_framing[framing]
                    row["change"].append(nme(a, b, b))
                    row["one_vs_ref"].append(nme(a, ref, ref))
                    row["two_vs_ref"].append(nme(b, ref, ref))
                    row["auto_vs_ref"].append(nme(c, ref, ref))
                    row["auto_one_pass"].append(float(np.array_equal(c, a)))
            for frac, row in sweep.items():
                for eye_y in (0.37, 0.40, 0.43):
                    crop, matrix = aligned_crop(im, ref_full, 100, eye_y, frac)
                    ref = transform_points(ref_full, matrix)
                    a, b = one.detect(crop)[0].landmarks, two.detect(crop)[0].landmarks
                    c = auto.detect(crop)[0].landmarks
                    row["one_vs_ref"].append(nme(a, ref, ref))
                    row["two_vs_ref"].append(nme(b, ref, ref))
                    row["auto_vs_ref"].append(nme(c, ref, ref))
                    row["auto_one_pass"].append(float(np.array_equal(c, a)))
    photos = {f: {k: summary(v) for k, v in rows.items()} for f, rows in per_framing.items()}
    demo = None
    if args.demo is not None:
        files = sorted((args.demo / "Image" / "aligned").glob("*.jpg"))[:args.demo_limit]
        change, auto_change, one_pass = [], [], []
        for f in files:
            crop = read_image(f)
            a, b, c = (be.detect(crop)[0].landmarks for be in (one, two, auto))
            change.append(nme(a, b, b))
            auto_change.append(nme(c, b, b))
            one_pass.append(float(np.array_equal(c, a)))
        demo = {"folder": str(args.demo), "change": summary(change), "auto_change": summary(auto_change),
                "auto_one_pass_share": round(float(np.mean(one_pass)), 3)}
    crop, _ = aligned_crop(resized(read_image(paths["obama.jpg"]), 500),
                           detect(resized(read_image(paths["obama.jpg"]), 500), "dlib")[0].landmarks, 100)
    timing = {}
    for label, backend in (("1 pass (refine=0)", one), ("2 passes (one_pass_band=none)", two)):
        backend.detect(crop)
        ts = []
        for _ in range(200):
            t0 = time.perf_counter()
            backend.detect(crop)
            ts.append(time.perf_counter() - t0)
        timing[label] = round(1000 * float(np.median(ts)), 3)
    doc = {"benchmark": "aligned_single_pass", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "loadavg": [round(v, 2) for v in os.getloadavg()]},
           "unit": "mean point-to-point distance over 68 points / inter-ocular distance",
           "test_photos": photos, "demo_set": demo, "ms_per_call_100px": timing,
           "sweep_iod_fraction": {str(f): {k: (round(float(np.mean(v)), 4)) for k, v in row.items()}
                                  for f, row in sweep.items()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print("framing      change 1 vs 2 passes (mean/p95/max) | 1 pass vs ref (mean/max) | 2 passes vs ref "
          "(mean/max) | default rule vs ref (mean/max), share with one pass")
    for f, r in photos.items():
        print(f"{f:12s} {r['change']['mean']:.4f} / {r['change']['p95']:.4f} / {r['change']['max']:.4f} | "
              f"{r['one_vs_ref']['mean']:.4f} / {r['one_vs_ref']['max']:.4f} | "
              f"{r['two_vs_ref']['mean']:.4f} / {r['two_vs_ref']['max']:.4f} | "
              f"{r['auto_vs_ref']['mean']:.4f} / {r['auto_vs_ref']['max']:.4f}, {r['auto_one_pass']['mean']:.2f}")
    for f, r in doc["sweep_iod_fraction"].items():
        print(f"eyes {f} of the width: 1 pass {r['one_vs_ref']:.4f}, 2 passes {r['two_vs_ref']:.4f}, "
              f"default rule {r['auto_vs_ref']:.4f} (one pass in {r['auto_one_pass']:.0%})")
    if demo:
        print(f"demo set ({demo['change']['n']} faces): change {demo['change']}")
    print(f"ms per call: {timing}; wrote {args.json}")


if __name__ == "__main__":
    main()
