"""Landmark backends: agreement with dlib, the MediaPipe table check, aligned mode, speed.

Run: ``.venv/bin/python benchmarks/landmark_accuracy.py`` (about a minute on 2 CPU cores).
Writes ``benchmarks/results/landmark_accuracy.json`` and prints the tables of docs/landmarks.md.

Error unit everywhere: mean point-to-point distance over the 68 points divided by the
inter-ocular distance (eye-centre to eye-centre) of the reference (dlib with detection).
Photos: the five test photos (occlusion_synth.photos.DEMO_PHOTOS), downscaled to 500 and 300 px
(long side), each also mirrored (left/right symmetry of the table is checked that way).
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occlusion_synth.io import read_image  # noqa: E402
from occlusion_synth.landmarks import detect, get_backend  # noqa: E402
from occlusion_synth.landmarks.align import aligned_crop, transform_points  # noqa: E402
from occlusion_synth.landmarks.mediapipe_backend import face_meshes  # noqa: E402
from occlusion_synth.landmarks.schemes import (  # noqa: E402
    EYES, GROUPS, MEDIAPIPE_TO_68, MEDIAPIPE_TO_68_PUBLISHED, MOUTH, NOSE, eye_centres,
    inter_ocular_distance)
from occlusion_synth.photos import DEMO_PHOTOS, fetch_photos  # noqa: E402

REPORT_GROUPS = ("jaw", "brows", "nose", "eyes", "mouth_outer", "mouth_inner")
# iBUG-68 left/right mirror permutation
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])
# aligned-crop framings: (size, eye line height, inter-ocular distance) as fractions of the side
FRAMINGS = {"rafdb_100": (100, 0.40, 0.36), "tight_100": (100, 0.37, 0.42),
            "loose_100": (100, 0.42, 0.30), "fer_48_gray": (48, 0.40, 0.38)}
JITTER = ((0.0, 0.0), (0.03, 0.02), (-0.03, -0.02))


def nme(a: np.ndarray, b: np.ndarray, ref: np.ndarray, idx=None) -> float:
    idx = slice(None) if idx is None else list(idx)
    return float(np.linalg.norm(a[idx] - b[idx], axis=1).mean() / inter_ocular_distance(ref))


def resized(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    s = side / max(image.shape[:2])
    return np.ascontiguousarray(cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))


def load_views(paths: dict) -> dict:
    """{(photo, side, mirrored): (image, dlib 68, mesh 468)}.

    The mesh comes from the backend's own path (full-range detection, mesh on the face crop).
    """
    views = {}
    for name in DEMO_PHOTOS:
        full = read_image(paths[name])
        for side in (500, 300):
            small = resized(full, side)
            for flip in (0, 1):
                im = np.ascontiguousarray(small[:, ::-1]) if flip else small
                views[(name, side, flip)] = (im, detect(im, "dlib", name=name)[0].landmarks,
                                             face_meshes(im)[0].points)
    return views


def mesh_symmetry(views: dict) -> np.ndarray:
    """Mirror partner of each mesh vertex, measured from each photo and its mirror image."""
    costs = []
    for (name, side, flip), (im, d0, m0) in views.items():
        if flip:
            continue
        _, _, m1 = views[(name, side, 1)]
        mirrored = m0.copy()
        mirrored[:, 0] = im.shape[1] - 1 - mirrored[:, 0]
        costs.append(np.linalg.norm(m1[:, None] - mirrored[None], axis=2) / inter_ocular_distance(d0))
    return np.mean(costs, axis=0).argmin(axis=1)


def check_table(views: dict, table, gain_min: float = 0.01) -> dict:
    """Per iBUG point, the error of the table's vertex and of the best admissible one.

    Admissible: a vertex of the same MediaPipe contour set (face oval / eyebrow / eye / lips),
    whose mirror partner is admissible for the mirrored iBUG point; pairs are scored together.
    """
    from mediapipe.python.solutions import face_mesh as fm

    def contour(*sets):
        return sorted({i for s in sets for e in s for i in e})

    oval, brow = contour(fm.FACEMESH_FACE_OVAL), contour(fm.FACEMESH_LEFT_EYEBROW, fm.FACEMESH_RIGHT_EYEBROW)
    eye, lips = contour(fm.FACEMESH_LEFT_EYE, fm.FACEMESH_RIGHT_EYE), contour(fm.FACEMESH_LIPS)
    nose = contour(fm.FACEMESH_NOSE) if hasattr(fm, "FACEMESH_NOSE") else list(range(468))
    cand = [oval if i < 17 else brow if i < 27 else nose if i < 36 else eye if i < 48 else lips
            for i in range(68)]
    D = np.stack([v[1] for v in views.values()])
    M = np.stack([v[2] for v in views.values()])
    iod = np.array([inter_ocular_distance(d) for d in D])
    err = (np.linalg.norm(M[:, None] - D[:, :, None], axis=3) / iod[:, None, None]).mean(axis=0)
    sym = mesh_symmetry(views)
    table = np.asarray(table)
    points, suggested = [], table.copy()
    for i in range(68):
        j = int(MIRROR_68[i])
        c = np.asarray(cand[i])
        c = c[np.isin(sym[c], cand[j])]
        pair_cost = (err[i, c] + err[j, sym[c]]) / 2
        best = int(c[pair_cost.argmin()])
        current = (err[i, table[i]] + err[j, table[j]]) / 2
        replace = current - pair_cost.min() > gain_min
        if replace:
            suggested[i], suggested[j] = best, int(sym[best])
        points.append({"ibug": i, "vertex": int(table[i]), "error": round(float(err[i, table[i]]), 4),
                       "best_vertex": best, "best_error": round(float(err[i, best]), 4),
                       "replace": bool(replace)})
    return {"points": points, "suggested": [int(v) for v in suggested],
            "table_is_stable": bool(np.array_equal(suggested, table))}


def agreement(views: dict, table) -> dict:
    table = np.asarray(table)
    per_photo, groups = {}, {g: [] for g in REPORT_GROUPS}
    for (name, side, flip), (_, d, m) in views.items():
        lm = m[table]
        per_photo[f"{name}@{side}{'-mirrored' if flip else ''}"] = round(nme(lm, d, d), 4)
        for g in REPORT_GROUPS:
            groups[g].append(nme(lm, d, d, GROUPS[g]))
    values = list(per_photo.values())
    return {"mean": round(float(np.mean(values)), 4), "max_photo": round(float(np.max(values)), 4),
            "groups": {g: round(float(np.mean(v)), 4) for g, v in groups.items()},
            "per_photo": per_photo}


def aligned_errors(views: dict) -> dict:
    """``aligned`` on crops vs dlib-with-detection landmarks mapped into the crop."""
    out = {}
    settings = {"default (inset 0, 1 refinement)": {}, "whole frame only (inset 0, refine 0)": {"refine": 0},
                "whole frame only (inset 0.05, refine 0)": {"refine": 0, "inset": 0.05}}
    for label, options in settings.items():
        backend = get_backend("aligned", **options)
        rows = {}
        for framing, (size, eye_y, iod_frac) in FRAMINGS.items():
            errs = []
            for (name, side, flip), (im, d, _) in views.items():
                if side != 500:
                    continue
                for dy, di in JITTER:
                    crop, matrix = aligned_crop(im, d, size, eye_y + dy, iod_frac + di)
                    if framing.endswith("gray"):
                        crop = np.repeat(crop.mean(axis=2, keepdims=True).round().astype(np.uint8), 3, axis=2)
                    ref = transform_points(d, matrix)
                    errs.append(nme(backend.detect(crop)[0].landmarks, ref, ref))
            rows[framing] = {"mean": round(float(np.mean(errs)), 4), "max": round(float(np.max(errs)), 4),
                             "n": len(errs)}
        out[label] = rows
    return out


def hog_box_relation(paths: dict) -> dict:
    """Where dlib's HOG box sits relative to the landmarks (constants of the aligned backend)."""
    rel = []
    for name in DEMO_PHOTOS:
        full = read_image(paths[name])
        for flip in (0, 1):
            im = np.ascontiguousarray(full[:, ::-1]) if flip else full
            for side in (400, 600, 900):
                face = detect(im, "dlib", max_side=side)[0]
                lm = face.landmarks.astype(np.float64)
                c = lm[list(EYES + NOSE + MOUTH)].mean(axis=0)
                r, l = eye_centres(lm)
                s = np.linalg.norm(l - r) + np.linalg.norm(lm[list(MOUTH)].mean(axis=0) - (l + r) / 2)
                b = face.box.astype(np.float64)
                rel.append([((b[0] + b[2]) / 2 - c[0]) / s, ((b[1] + b[3]) / 2 - c[1]) / s,
                            ((b[2] - b[0]) + (b[3] - b[1])) / 2 / s])
    rel = np.array(rel)
    return {"offset_x": round(float(rel[:, 0].mean()), 4), "offset_y": round(float(rel[:, 1].mean()), 4),
            "side": round(float(rel[:, 2].mean()), 4), "side_std": round(float(rel[:, 2].std()), 4),
            "n": len(rel)}


def timings(views: dict, repeats: int = 7) -> dict:
    """Median seconds per image (one face) of each backend, warm (models loaded)."""
    im, d, _ = views[("obama.jpg", 500, 0)]
    crop, matrix = aligned_crop(im, d, 100)
    cases = {"photo_500px": im, "crop_100px": crop}
    truth = {"photo_500px": d, "crop_100px": transform_points(d, matrix)}
    backends = {"dlib (HOG, upsample 1)": ("dlib", {}), "dlib (HOG, upsample 0)": ("dlib", {"upsample": 0}),
                "dlib (CNN mmod, upsample 0)": ("dlib", {"cnn": True, "upsample": 0}),
                "mediapipe": ("mediapipe", {}), "aligned": ("aligned", {}),
                "provided": ("provided", {})}
    out = {}
    for label, (name, options) in backends.items():
        row = {}
        for case, image in cases.items():
            if name == "aligned" and case != "crop_100px":
                continue
            if name == "provided":
                options = {"provided": truth[case]}
            detect(image, name, **options)  # warm-up
            times = []
            for _ in range(repeats if "CNN" not in label else 3):
                t = time.perf_counter()
                try:
                    detect(image, name, **options)
                except Exception as exc:  # noqa: BLE001 - record e.g. "no face" instead of a time
                    row[case] = f"failed: {type(exc).__name__}"
                    break
                times.append(time.perf_counter() - t)
            else:
                row[case] = round(statistics.median(times) * 1000, 2)
        out[label] = row
    return out


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def main() -> None:
    import dlib
    import mediapipe

    paths = fetch_photos(REPO / ".cache")
    views = load_views(paths)
    result = {
        "machine": machine(), "dlib": dlib.__version__, "mediapipe": mediapipe.__version__,
        "unit": "mean point error / inter-ocular distance (reference: dlib with detection)",
        "mediapipe_vs_dlib": {"table": agreement(views, MEDIAPIPE_TO_68),
                              "published_table": agreement(views, MEDIAPIPE_TO_68_PUBLISHED)},
        "table_check": check_table(views, MEDIAPIPE_TO_68),
        "published_table_check": {k: v for k, v in check_table(views, MEDIAPIPE_TO_68_PUBLISHED).items()
                                  if k != "points"},
        "aligned_vs_full": aligned_errors(views),
        "hog_box_relation": hog_box_relation(paths),
        "time_ms_per_image": timings(views),
    }
    out = REPO / "benchmarks" / "results" / "landmark_accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    mvd = result["mediapipe_vs_dlib"]
    for key in ("table", "published_table"):
        print(f"mediapipe vs dlib ({key}): mean {mvd[key]['mean']}, worst photo {mvd[key]['max_photo']}, "
              f"groups {mvd[key]['groups']}")
    print("table stable under the check:", result["table_check"]["table_is_stable"])
    for label, rows in result["aligned_vs_full"].items():
        print("aligned", label, rows)
    print("hog box relation", result["hog_box_relation"])
    for label, row in result["time_ms_per_image"].items():
        print(f"time ms {label}: {row}")
    print("wrote", out)


if __name__ == "__main__":
    main()
