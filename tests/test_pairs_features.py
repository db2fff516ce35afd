"""Paired-generation features: every face occluded, unlabelled folders, val split, cached landmarks."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from occlusion_synth.io import read_image, write_image
from occlusion_synth.pairs import PairsConfig, generate_pairs, read_csv
from occlusion_synth.pairs.plan import val_assignment

from test_generate import face_crops, write_rafdb  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(scope="module")
def two_faces(photos) -> np.ndarray:
    """obama.jpg and biden.jpg side by side, 240 px high: one image, two faces."""
    parts = []
    for name in ("obama.jpg", "biden.jpg"):
        img = read_image(photos[name])
        s = 240 / img.shape[0]
        parts.append(cv2.resize(img, (round(img.shape[1] * s), 240), interpolation=cv2.INTER_AREA))
    return np.ascontiguousarray(np.hstack(parts))


def _components(mask: np.ndarray) -> int:
    return cv2.connectedComponents((mask[..., 0] > 0).astype(np.uint8))[0] - 1


def test_faces_all_occludes_every_face_and_unions_the_masks(two_faces, tmp_path):
    root = tmp_path / "src" / "happy"
    write_image(root / "pair.png", two_faces)
    kw = dict(src="folder", root=str(tmp_path / "src"), landmarks="dlib", categories=("block",), crop="none")
    generate_pairs(PairsConfig(out=str(tmp_path / "one"), **kw))
    generate_pairs(PairsConfig(out=str(tmp_path / "all"), faces="all", **kw))
    one, every = (read_csv(tmp_path / d / "manifest.csv")[0] for d in ("one", "all"))
    assert one["faces_occluded"] == "1" and every["faces_occluded"] == "2"
    m1, m2 = (read_image(tmp_path / d / r["mask"]) for d, r in (("one", one), ("all", every)))
    assert _components(m1) == 1 and _components(m2) == 2
    # the largest face draws the same occluder either way (its seed is the pair seed)
    assert ((m1 > 0) <= (m2 > 0)).all()
    faces = json.loads((tmp_path / "all" / "landmarks.jsonl").read_text())["faces"]
    assert len(faces) == 2 and all(len(f) == 136 for f in faces)
    xs = sorted(np.mean(f[0::2]) for f in faces)
    assert xs[0] < two_faces.shape[1] / 2 < xs[1]  # one face in each half


def test_flat_folder_of_unlabelled_photos(photos, tmp_path):
    crops = face_crops(photos, 64)
    root = tmp_path / "photos"
    for i, c in enumerate(crops[:3]):
        write_image(root / f"p{i}.png", c)
    out = tmp_path / "o"
    generate_pairs(PairsConfig(src="folder", root=str(root), out=str(out), landmarks="aligned",
                               categories=("block",)))
    rows = read_csv(out / "manifest.csv")
    assert len(rows) == 3 and {r["label"] for r in rows} == {""} and {r["label_name"] for r in rows} == {""}
    assert all(r["clean"].startswith("clean/train/unlabelled/") for r in rows)


def test_val_fraction_moves_a_seeded_part_of_train(photos, tmp_path):
    root = write_rafdb(tmp_path / "raf", face_crops(photos, 48), 56)
    kw = dict(src="rafdb", root=str(root), landmarks="aligned", categories=("block",))
    base = read_csv(_run(tmp_path / "base", **kw) / "manifest.csv")
    val = read_csv(_run(tmp_path / "val", val_fraction=0.5, **kw) / "manifest.csv")
    again = read_csv(_run(tmp_path / "again", val_fraction=0.5, workers=2, **kw) / "manifest.csv")
    split = {r["id"]: r["split"] for r in val}
    assert [(r["id"], r["split"]) for r in again] == [(r["id"], r["split"]) for r in val]
    assert {r["id"] for r in base} == set(split)
    assert all(split[r["id"]] == "test" for r in base if r["split"] == "test")  # test untouched
    moved = [r for r in base if r["split"] == "train" and split[r["id"]] == "val"]
    n_train = sum(r["split"] == "train" for r in base)
    assert 0.25 * n_train < len(moved) < 0.75 * n_train
    assert len({r["label"] for r in moved}) >= 5  # drawn within every class, not one class
    only_val = read_csv(_run(tmp_path / "onlyval", val_fraction=0.5, splits=("val",), **kw) / "manifest.csv")
    assert sorted(r["id"] for r in only_val) == sorted(r["id"] for r in moved)


def _run(out: Path, **kw) -> Path:
    generate_pairs(PairsConfig(out=str(out), **kw))
    return out


def test_val_fraction_keeps_an_identity_together(photos, tmp_path):
    root = write_rafdb(tmp_path / "demo", face_crops(photos, 48), 40)
    people = ("collins", "obama", "biden", "obama2person", "someone")
    samples = [{"id": f"{'test' if i % 4 == 0 else 'train'}_{i + 1:05d}", "photo": f"{people[i % 5]}.jpg"}
               for i in range(40)]
    (root / "demo_info.json").write_text(json.dumps({"samples": samples}))
    out = _run(tmp_path / "o", src="demo", root=str(root), landmarks="aligned", categories=("block",),
               val_fraction=0.4, seed=3)
    by_person: dict[str, set] = {}
    photo = {s["id"]: s["photo"] for s in samples}
    for r in read_csv(out / "manifest.csv"):
        if r["split"] != "test":
            by_person.setdefault(photo[r["id"]], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_person.values()), by_person
    assert val_assignment(3, 0.4, "a", 1, "x") == val_assignment(3, 0.4, "b", 5, "x")


def test_cached_landmarks_are_reused_by_a_later_run(two_faces, photos, tmp_path):
    root = tmp_path / "src" / "happy"
    write_image(root / "pair.png", two_faces)
    write_image(root / "solo.jpg", cv2.resize(read_image(photos["astronaut.png"]), (256, 256)))
    # max_side below the pair image's width: landmarks are saved in source pixels and scaled back
    kw = dict(src="folder", root=str(tmp_path / "src"), categories=("block",), faces="all", max_side=250)
    assert two_faces.shape[1] > 250
    first = _run(tmp_path / "first", landmarks="dlib", **kw)
    second = _run(tmp_path / "second", landmarks="cached", landmark_cache=str(first), seed=7, **kw)
    rows = read_csv(second / "manifest.csv")
    assert {r["landmark_source"] for r in rows} == {"cached"} and len(rows) == 2
    a = [json.loads(line) for line in (first / "landmarks.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (second / "landmarks.jsonl").read_text().splitlines()]
    assert [x["faces"] for x in a] == [x["faces"] for x in b] and len(a[0]["faces"]) == 2
    # same clean images, other occluders (another seed)
    for r1, r2 in zip(read_csv(first / "manifest.csv"), rows):
        assert (first / r1["clean"]).read_bytes() == (second / r2["clean"]).read_bytes()
    assert any((first / r1["mask"]).read_bytes() != (second / r2["mask"]).read_bytes()
               for r1, r2 in zip(read_csv(first / "manifest.csv"), rows))


class PickleRoundTripExecutor:
    """Another engine, as a Ray executor would be: spec and tasks travel pickled, results too."""

    def __init__(self):
        self.tasks = 0

    def map(self, spec, tasks):
        import pickle

        from occlusion_synth.pairs import SampleWorker

        worker = SampleWorker(pickle.loads(pickle.dumps(spec)))
        for task in tasks:
            self.tasks += 1
            yield pickle.loads(pickle.dumps(worker(pickle.loads(pickle.dumps(task)))))


def test_another_executor_gives_the_same_bytes(photos, tmp_path):
    root = write_rafdb(tmp_path / "raf", face_crops(photos, 48), 8)
    kw = dict(src="rafdb", root=str(root), landmarks="aligned", categories=("mask", "block"))
    local = _run(tmp_path / "local", **kw)
    engine = PickleRoundTripExecutor()
    generate_pairs(PairsConfig(out=str(tmp_path / "other"), **kw), executor=engine)
    assert engine.tasks == 8

    def tree(out):
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
                if p.is_file() and ".occsynth" not in p.parts and p.name != "dataset.json"}

    assert tree(tmp_path / "other") == tree(local)


def test_faces_all_with_crop_and_size(two_faces, tmp_path):
    root = tmp_path / "src" / "happy"
    write_image(root / "pair.png", two_faces)
    out = _run(tmp_path / "o", src="folder", root=str(tmp_path / "src"), landmarks="dlib", categories=("block",),
               crop="face", crop_margin=1.5, size=96, faces="all")
    row = read_csv(out / "manifest.csv")[0]
    assert read_image(out / row["clean"]).shape == (96, 96, 3) and row["faces_occluded"] in ("1", "2")


def test_the_landmark_cache_is_read_into_a_scratch_file_not_memory(tmp_path):
    from occlusion_synth.pairs.journal import LandmarkCache

    pts = np.arange(136, dtype=np.float32).reshape(68, 2)
    lines = [json.dumps({"id": "a", "faces": [pts.tolist()]}),
             "{not json",
             json.dumps({"id": "b", "faces": [pts.tolist(), (pts + 1).tolist()]}),
             json.dumps({"id": "c", "faces": [[[float("nan"), 0.0]] * 68]}),   # non-finite: detected again
             json.dumps({"id": "d", "faces": [[1.0, 2.0]]}),                    # not 68 points
             json.dumps({"id": "e"}),
             json.dumps({"id": "a", "faces": [(pts * 2).tolist()]})]            # a later line wins
    (tmp_path / "landmarks.jsonl").write_text("\n".join(lines) + "\n")
    scratch = tmp_path / "state" / "cache.sqlite"
    with LandmarkCache(tmp_path, scratch) as cache:
        assert scratch.is_file() and len(cache) == 2
        assert np.array_equal(cache.get("a")[0], pts * 2) and len(cache.get("a")) == 1
        b = cache.get("b")
        assert len(b) == 2 and np.array_equal(b[1], pts + 1) and b[0].dtype == np.float32
        b[0][:] = -1  # a copy: the stored landmarks do not change
        assert np.array_equal(cache.get("b")[0], pts)
        assert cache.get("c") is None and cache.get("d") is None and cache.get("e") is None
    assert not scratch.exists()
