"""The generation hot path: one per-face loop for the API and generate, one BLAS thread per sample,
cached render pieces that give the same bytes."""
import numpy as np
import pytest

from occluder_fixtures import toy_library
from occlusion_synth import functional as F
from occlusion_synth import placement as P
from occlusion_synth.pairs.blas import _openblas_controls, single_thread_blas
from occlusion_synth.pairs.plan import face_seed
from occlusion_synth.transforms import Occlude, occlude_faces


@pytest.fixture(scope="module")
def group(photo_arrays):
    """Two real faces side by side, with their dlib landmarks."""
    import cv2

    from occlusion_synth.landmarks import detect

    parts = []
    for name in ("obama.jpg", "biden.jpg"):
        img = photo_arrays[name]
        s = 240 / img.shape[0]
        parts.append(cv2.resize(img, (round(img.shape[1] * s), 240), interpolation=cv2.INTER_AREA))
    image = np.ascontiguousarray(np.hstack(parts))
    faces = [f.landmarks for f in detect(image, backend="dlib", all_faces=True)]
    assert len(faces) == 2
    return image, faces


def test_one_rng_per_face_gives_face_zero_the_single_face_draw(group):
    image, faces = group
    occ = Occlude(templates=toy_library(texture=True), categories=("food", "hand", "mask", "block"))
    seed = 12345
    single = occ(image, faces[0], np.random.default_rng(face_seed(seed, 0)))
    rngs = [np.random.default_rng(face_seed(seed, j)) for j in range(len(faces))]
    timing = {}
    every = occ.occlude_faces(image, faces, rngs, timing=timing)
    assert every["params"][0].to_dict() == single["params"].to_dict()
    assert every["occluded"] == 2 and every["failures"] == [None, None]
    assert ((single["mask"] > 0) <= (every["mask"] > 0)).all()
    assert timing["placement"] > 0 and timing["composite"] > 0
    # the module function is the same loop, for any occluder with get_params/apply
    again = occlude_faces(occ, image, faces, [np.random.default_rng(face_seed(seed, j)) for j in range(2)])
    assert np.array_equal(again["image"], every["image"]) and np.array_equal(again["mask"], every["mask"])
    with pytest.raises(ValueError, match="2 faces"):
        occlude_faces(occ, image, faces, [np.random.default_rng(0)])


def test_failed_faces_are_reported_and_the_image_is_not_touched(group):
    image, faces = group
    occ = Occlude(templates=toy_library(), categories=("food",), coverage_range=(0.999, 1.0), max_tries=3)
    res = occ.occlude_faces(image, faces, 0)
    assert res["occluded"] == 0 and all("could not place" in f for f in res["failures"])
    assert np.array_equal(res["image"], image) and res["image"] is not image and not res["mask"].any()


def test_single_thread_blas_restores_the_previous_counts():
    controls = _openblas_controls()
    before = [get() for get, _ in controls]
    with single_thread_blas():
        assert all(get() == 1 for get, _ in controls)
        a = np.eye(30) * 3 + 0.01
        assert np.allclose(np.linalg.solve(a, np.ones(30)) @ a, 1.0)
    assert [get() for get, _ in controls] == before


def test_cached_shrinks_and_grids_give_the_same_render():
    """A second render of the same placement reuses cached pieces and gives the same bytes."""
    lib = toy_library(texture=True)
    template = lib.by_category("mask")[0]
    w = template.rgba.shape[1]
    idx, src = template.landmark_anchors()
    dst = (src - src.mean(0)) * (60.0 / w) + (50, 60)
    outs = [F.render_tps(template.rgba, src, dst, (100, 100)) for _ in range(3)]
    assert 60.0 / w < 0.75  # a shrink: the exact-size level is made once and cached
    for rgb, alpha, box in outs[1:]:
        assert box == outs[0][2]
        assert np.array_equal(rgb, outs[0][0]) and np.array_equal(alpha, outs[0][1])
    prepared = template.prepared
    assert prepared._sized and all(not v.flags.writeable for v in prepared._sized.values())
    plc = P.Placement(template=template.name, category="mask", region="nose", warp="tps",
                      src=src.tolist(), dst=dst.tolist())
    assert P.render(template, plc, (100, 100)) is not None


def test_a_cached_spline_system_fits_as_a_fresh_solve_and_singular_sets_still_fit():
    from occlusion_synth.functional.warp import _tps_eval, _tps_fit, _tps_inverse

    rng = np.random.default_rng(3)
    src = rng.uniform(0, 200, (20, 2))
    probe = rng.uniform(-20, 220, (50, 2))
    for k in range(3):  # new targets for the same anchors: one cached inverse, same spline
        dst = src * 0.4 + rng.normal(0, 2, src.shape) + 10
        fresh, cached = _tps_fit(src, dst, 1e-3), _tps_fit(src, dst, 1e-3, reuse=True)
        np.testing.assert_allclose(_tps_eval(cached, probe), _tps_eval(fresh, probe), atol=1e-6)
    assert _tps_inverse.cache_info().hits >= 2
    twice = np.vstack([src[:3], src[:3]])  # repeated points, no smoothing: singular, not cached
    fit = _tps_fit(twice, twice + 1.0, 0.0, reuse=True)
    np.testing.assert_allclose(_tps_eval(fit, src[:3]), src[:3] + 1.0, atol=1e-6)


def _reference_tps(src, dst, regularization):
    """The thin-plate spline by the textbook construction (normalised points, full solve)."""
    mu = src.mean(0)
    sc = np.sqrt(((src - mu) ** 2).sum(1).mean())
    p = (src - mu) / sc
    n = len(p)
    r2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    k = np.where(r2 > 0, r2 * np.log(np.where(r2 > 0, r2, 1.0)), 0.0) + regularization * np.eye(n)
    a = np.block([[k, np.ones((n, 1)), p], [np.ones((1, n)), np.zeros((1, 3))], [p.T, np.zeros((2, 3))]])
    coef = np.linalg.solve(a, np.vstack([dst, np.zeros((3, 2))]))

    def at(q):
        q = (q - mu) / sc
        d2 = ((q[:, None] - p[None]) ** 2).sum(-1)
        u = np.where(d2 > 0, d2 * np.log(np.where(d2 > 0, d2, 1.0)), 0.0)
        return u @ coef[:n] + coef[n] + q @ coef[n + 1:]
    return at


def test_the_spline_and_its_grid_evaluation_match_the_textbook_construction():
    from occlusion_synth.functional.warp import _tps_eval, _tps_eval_grid, _tps_fit

    rng = np.random.default_rng(5)
    src = rng.uniform(0, 90, (25, 2))
    dst = src * 2.5 + rng.normal(0, 3, src.shape) + 7
    xs, ys = np.arange(-6.0, 100.0, 4.0), np.arange(3.0, 95.0, 4.0)
    gx, gy = np.meshgrid(xs, ys)
    for reg in (0.0, 1e-3, 0.5):  # the smoothing term sits on the diagonal only
        ref = _reference_tps(src, dst, reg)
        fit = _tps_fit(src, dst, reg)
        pts = np.stack([gx.ravel(), gy.ravel()], 1)
        want = ref(pts)
        np.testing.assert_allclose(_tps_eval(fit, pts), want, atol=1e-8)
        np.testing.assert_allclose(_tps_eval_grid(fit, xs, ys).reshape(-1, 2), want, atol=1e-8)
        if reg == 0.0:  # an interpolating spline passes through its control points
            np.testing.assert_allclose(_tps_eval(fit, src), dst, atol=1e-8)


@pytest.mark.parametrize("coder", ["installed", "zlib"])
def test_the_fast_png_writer_round_trips_in_every_reader(coder, monkeypatch):
    import io
    import zlib

    import cv2
    from PIL import Image

    import occlusion_synth.io as oio

    if coder == "zlib":  # the coder used when isal is missing
        monkeypatch.setattr(oio, "_DEFLATE", oio._deflate(use_isal=False))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:61, :47]
    smooth = np.stack([xx * 5, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)
    images = [smooth, rng.integers(0, 256, (33, 17, 3), dtype=np.uint8), np.zeros((1, 1, 3), np.uint8),
              np.full((5, 7), 200, np.uint8), (rng.random((40, 30)) > 0.5).astype(np.uint8) * 255,
              np.ascontiguousarray(smooth[::-1, ::2])]
    for img in images:
        data = oio.encode_png_fast(img)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), img), img.shape
        back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(back if img.ndim == 2 else back[..., ::-1], img), img.shape
        assert oio.encode_png_fast(img) == data  # deterministic
    # colour PNGs go through it by default; an explicit level keeps OpenCV's encoder
    assert oio.encode_image(smooth, "png") == oio.encode_png_fast(smooth)
    explicit = oio.encode_image(smooth, "png", png_compression=6)
    assert explicit != oio.encode_png_fast(smooth)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(explicit))), smooth)
    # one CRC per chunk, as readers check it
    body = oio.encode_png_fast(smooth)[8:]
    while body:
        n = int.from_bytes(body[:4], "big")
        kind, payload, crc = body[4:8], body[8:8 + n], body[8 + n:12 + n]
        assert zlib.crc32(kind + payload).to_bytes(4, "big") == crc
        body = body[12 + n:]
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError):
            oio.encode_png_fast(bad)


def test_cached_mask_anchors_stay_read_only_and_follow_the_anchors():
    import pickle

    from occlusion_synth.templates import load_templates

    template = load_templates(categories=["mask"]).templates[0]
    idx, pts = template.landmark_anchors()
    assert template.landmark_anchors()[0] is idx  # made once
    for copy in (template, pickle.loads(pickle.dumps(template))):  # a worker's unpickled copy too
        i, p = copy.landmark_anchors()
        assert not i.flags.writeable and not p.flags.writeable
        assert np.array_equal(i, idx) and np.array_equal(p, pts)
    copy.anchors = dict(copy.anchors, **{f"lm{int(idx[0])}": (1.0, 2.0)})  # changed anchors are read again
    i, p = copy.landmark_anchors()
    assert np.array_equal(p[0], (1.0, 2.0)) and np.array_equal(template.landmark_anchors()[1], pts)
