"""Faces found by dlib vs MediaPipe on real photos, and their landmark agreement.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/landmark_detection.py`` (a few minutes on 2 cores).
Writes ``benchmarks/results/landmark_detection.json``; docs/landmarks.md ("Detection on real
photos") quotes it.

Photos: the five demo photos plus camera.png (grayscale, turned head), obama_partial_face.jpg
(face at the frame edge) and grace_hopper.jpg (tests/landmark_photos.py says where each comes
from), each at full size, 500 px and 250 px long side (low resolution), in colour and as a
grayscale copy; and two synthetic group photos (4 faces of 110-60 px, 6 faces of 80 px, no
package ships a real group photo), also at low resolution (faces of 40-48 px) and in gray.

Per case: faces found by dlib (HOG, upsample 1), by the ``mediapipe`` backend (full-range
detection + mesh per face), and by MediaPipe's plain face mesh on the whole frame (the backend
before this change, ``max_num_faces=16``); how many dlib faces the MediaPipe backend matched (a
MediaPipe face whose landmark centre lies within half an inter-ocular distance of dlib's); the
agreement of matched faces (mean point error / dlib's inter-ocular distance); wall time per call.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from landmark_photos import EXTRA_PHOTOS, extra_photo, group_canvas, resize_long, to_gray3  # noqa: E402
from occlusion_synth.io import read_image  # noqa: E402
from occlusion_synth.landmarks import get_backend  # noqa: E402
from occlusion_synth.landmarks.mediapipe_backend import mesh_points  # noqa: E402
from occlusion_synth.landmarks.schemes import inter_ocular_distance  # noqa: E402
from occlusion_synth.photos import DEMO_PHOTOS, fetch_photos  # noqa: E402

GROUP4 = (("obama.jpg", 110), ("grace_hopper.jpg", 90), ("biden.jpg", 75), ("astronaut.png", 60))
GROUP4_LOW = (48, 44, 42, 40)
GROUP6 = ("obama.jpg", "biden.jpg", "astronaut.png", "grace_hopper.jpg", "obama2.jpg", "obama3.jpg")


def load_photos() -> dict[str, np.ndarray]:
    paths = fetch_photos(REPO / ".cache")
    photos = {n: read_image(paths[n]) for n in DEMO_PHOTOS}
    photos.update({n: extra_photo(n, REPO / ".cache") for n in EXTRA_PHOTOS})
    return photos


def cases(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, im in photos.items():
        for side in (None, 500, 250):
            x = im if side is None else resize_long(im, side)
            out[f"{name}@{side or 'full'}"] = x
    at500 = {n: resize_long(im, 500) for n, im in photos.items()}
    out["group4"] = group_canvas([at500[n] for n, _ in GROUP4], [px for _, px in GROUP4])
    out["group4-low"] = group_canvas([at500[n] for n, _ in GROUP4], list(GROUP4_LOW))
    out["group6"] = group_canvas([at500[n] for n in GROUP6], [80] * len(GROUP6))
    out = {**out, **{f"{k}-gray": to_gray3(v) for k, v in out.items()}}
    return dict(sorted(out.items()))


def timed(fn, image):
    t = time.perf_counter()
    result = fn(image)
    return result, round((time.perf_counter() - t) * 1000, 1)


def compare(image: np.ndarray) -> dict:
    dlib = get_backend("dlib")
    mp = get_backend("mediapipe")
    d, d_ms = timed(dlib.detect, image)
    m, m_ms = timed(mp.detect, image)
    mesh = mesh_points(image, max_faces=16)
    matched, errors = 0, []
    for f in d:
        centre, iod = f.landmarks.mean(axis=0), inter_ocular_distance(f.landmarks)
        near = [g for g in m if np.linalg.norm(g.landmarks.mean(axis=0) - centre) < 0.5 * iod]
        if near:
            matched += 1
            errors.append(min(float(np.linalg.norm(g.landmarks - f.landmarks, axis=1).mean() / iod)
                              for g in near))
    return {"size": f"{image.shape[1]}x{image.shape[0]}", "dlib": len(d), "mediapipe": len(m),
            "mesh_whole_frame": len(mesh), "matched": matched,
            "dlib_face_px": [round(float(f.box[2] - f.box[0])) for f in d],
            "mediapipe_scores": [round(f.score, 2) for f in m],
            "agreement": [round(e, 4) for e in errors], "ms_dlib": d_ms, "ms_mediapipe": m_ms}


def summarise(rows: dict[str, dict]) -> dict:
    def block(keys):
        rs = [rows[k] for k in keys]
        errs = [e for r in rs for e in r["agreement"]]
        return {"cases": len(rs), "dlib_faces": sum(r["dlib"] for r in rs),
                "matched_by_mediapipe": sum(r["matched"] for r in rs),
                "mediapipe_faces": sum(r["mediapipe"] for r in rs),
                "mesh_whole_frame_faces": sum(r["mesh_whole_frame"] for r in rs),
                "cases_mesh_whole_frame_found_fewer_than_dlib":
                    sum(r["mesh_whole_frame"] < r["dlib"] for r in rs),
                "cases_mediapipe_found_fewer_than_dlib": sum(r["matched"] < r["dlib"] for r in rs),
                "agreement_mean": round(float(np.mean(errs)), 4) if errs else None,
                "agreement_max": round(float(np.max(errs)), 4) if errs else None,
                "median_ms_dlib": round(float(np.median([r["ms_dlib"] for r in rs])), 1),
                "median_ms_mediapipe": round(float(np.median([r["ms_mediapipe"] for r in rs])), 1)}

    keys = list(rows)
    single = [k for k in keys if "@" in k and not k.startswith("camera.png")]
    groups = {
        "all": keys,
        "single photos, colour": [k for k in single if not k.endswith("-gray")],
        "single photos, gray": [k for k in single if k.endswith("-gray")],
        "turned head (camera.png, gray)": [k for k in keys if k.startswith("camera.png")],
        "low resolution (250 px, group4-low)": [k for k in keys if "@250" in k or "low" in k],
        "group photos": [k for k in keys if k.startswith("group")],
    }
    return {label: block(ks) for label, ks in groups.items()}


def main() -> None:
    import platform

    import dlib
    import mediapipe

    photos = load_photos()
    get_backend("dlib"), get_backend("mediapipe")  # load models before timing
    rows = {}
    for name, image in cases(photos).items():
        rows[name] = compare(image)
        r = rows[name]
        print(f"{name:34s} {r['size']:>10s} dlib {r['dlib']} mediapipe {r['mediapipe']} "
              f"(matched {r['matched']}) whole-frame mesh {r['mesh_whole_frame']} "
              f"agreement {r['agreement']} ms {r['ms_dlib']}/{r['ms_mediapipe']}", flush=True)
    result = {"dlib": dlib.__version__, "mediapipe": mediapipe.__version__,
              "python": platform.python_version(),
              "unit": "agreement: mean point error / dlib inter-ocular distance, per matched face",
              "summary": summarise(rows), "cases": rows}
    out = REPO / "benchmarks" / "results" / "landmark_detection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    for label, s in result["summary"].items():
        print(label, s)
    print("wrote", out)


if __name__ == "__main__":
    main()
