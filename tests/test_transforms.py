"""Contract tests over every occluder kind: Occlude / BlockOcclude on real face crops."""
import json
from dataclasses import replace

import numpy as np
import pytest

from occluder_fixtures import toy_library
from occlusion_synth import functional as F
from occlusion_synth import placement as P
from occlusion_synth.errors import OcclusionSynthError, PlacementError
from occlusion_synth.transforms import BlockOcclude, Occlude, OcclusionParams

KINDS = ["food", "hand", "drink", "mask", "block:r8", "block:r16", "block:r24", "block:eyes",
         "block:mouth"]


@pytest.fixture(scope="module")
def library():
    return toy_library(texture=True, drink_size=(70, 44), drink_center=(21.5, 34.5))


@pytest.fixture(scope="module")
def faces(photo_arrays):
    """Real face crops (128 px) with real dlib landmarks."""
    from occlusion_synth.landmarks import detect
    from occlusion_synth.preview import crop_face

    out = []
    for name in ("obama.jpg", "biden.jpg"):
        face = detect(photo_arrays[name], backend="dlib", max_side=640)[0]
        out.append(crop_face(photo_arrays[name], face.landmarks, 128))
    return out


def _make(kind, library, **kw):
    if kind.startswith("block:"):
        return BlockOcclude(kind=kind.split(":")[1], fill=kw.pop("fill", "noise"), **kw)
    return Occlude(templates=library, categories=(kind,), **kw)


def _footprint(occ, params, shape):
    """Pixels allowed to change: alpha > 0 of the rendered occluder (or the block rectangle)."""
    foot = np.zeros(shape, bool)
    if params.category == "block":
        x0, y0, x1, y1 = params.block["rect"]
        foot[y0:y1, x0:x1] = True
        return foot
    _, alpha, (x0, y0, x1, y1) = P.render(occ.library.get(params.template),
                                          P.Placement(**params.placement), shape)
    foot[y0:y1, x0:x1] = alpha > 0
    return foot


@pytest.mark.parametrize("kind", KINDS)
def test_contract(kind, library, faces):
    occ = _make(kind, library)
    for i, (image, lm) in enumerate(faces):
        before = image.copy()
        res = occ(image, lm, np.random.default_rng(i))
        out, mask, params = res["image"], res["mask"], res["params"]
        assert np.array_equal(image, before)  # input untouched
        assert out.shape == image.shape and out.dtype == np.uint8
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
        assert params.category == kind.split(":")[0]
        changed = np.any(out != image, axis=2)
        assert not (changed & (mask == 0)).any(), "pixels changed outside the mask"
        assert changed[mask > 0].mean() > 0.8, "mask pixels mostly changed"
        # without harmonisation (no blur) the mask is exactly the rendered footprint
        plain, plain_mask = occ.apply(image, replace(params, harmonise=None))
        assert np.array_equal(plain_mask > 0, _footprint(occ, params, image.shape[:2]))
        # replay, also through JSON
        again, again_mask = occ.apply(image, params)
        assert np.array_equal(again, out) and np.array_equal(again_mask, mask)
        restored = OcclusionParams.from_dict(json.loads(json.dumps(params.to_dict())))
        again, again_mask = _make(kind, library).apply(image, restored)  # fresh instance, no cache
        assert np.array_equal(again, out) and np.array_equal(again_mask, mask)
        # the recorded fraction is the mask's
        face = F.face_region_mask(lm, image.shape[:2])
        assert params.occluded_fraction == pytest.approx(F.occluded_fraction(mask, face))


@pytest.mark.parametrize("kind", ["food", "hand", "drink", "mask", "block:r16"])
def test_seeding(kind, library, faces):
    occ = _make(kind, library)
    image, lm = faces[0]
    a = occ(image, lm, np.random.default_rng(5))["image"]
    b = occ(image, lm, np.random.default_rng(5))["image"]
    c = occ(image, lm, np.random.default_rng(6))["image"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("kind,coverage", [("food", (0.15, 0.3)), ("hand", (0.3, 0.5)),
                                           ("mask", (0.3, 0.7)), ("block:r24", (0.4, 0.8))])
def test_coverage_range_is_met(kind, coverage, library, faces):
    occ = _make(kind, library, coverage_range=coverage)
    for seed in range(3):
        image, lm = faces[seed % 2]
        res = occ(image, lm, np.random.default_rng(seed))
        face = F.face_region_mask(lm, image.shape[:2])
        frac = F.occluded_fraction(res["mask"], face)
        assert coverage[0] <= frac <= coverage[1]


def test_impossible_coverage_raises_placement_error(library, faces):
    occ = Occlude(templates=library, categories=("food",), coverage_range=(0.95, 1.0), max_tries=10)
    image, lm = faces[0]
    with pytest.raises(PlacementError, match=r"\[0.95, 1\].*10 tries"):
        occ.get_params(image, lm, np.random.default_rng(0))


def test_p_zero_returns_unchanged_image_and_empty_mask(library, faces):
    image, lm = faces[0]
    res = Occlude(templates=library, p=0.0)(image, lm, np.random.default_rng(0))
    assert np.array_equal(res["image"], image) and not res["mask"].any()
    assert res["params"].category == "none" and res["params"].to_dict()["category"] == "none"


def test_shadow_changes_pixels_only_near_the_occluder(library, faces):
    image, lm = faces[0]
    occ = Occlude(templates=library, categories=("hand",), shadow=True, harmonize=False)
    res = occ(image, lm, np.random.default_rng(3))
    params = res["params"]
    assert params.shadow is not None
    foot = _footprint(occ, params, image.shape[:2])
    changed = np.any(res["image"] != image, axis=2)
    outside = changed & ~foot
    assert outside.any()  # the shadow darkened something beyond the occluder
    assert (res["image"][outside].astype(int) <= image[outside]).all()
    assert (res["mask"][outside] == 255).all()  # the shadow is part of the honest mask
    assert np.array_equal(occ.apply(image, params)[0], res["image"])


def test_harmonize_off_keeps_template_colours(library, faces):
    image, lm = faces[0]
    occ = Occlude(templates=library, categories=("food",), harmonize=False)
    res = occ(image, lm, np.random.default_rng(0))
    inner = res["image"][res["mask"] > 0].reshape(-1, 3).astype(int)
    assert np.median(inner[:, 0]) == pytest.approx(200, abs=3)  # the apple's red, untouched


def test_argument_errors_name_the_argument(library):
    with pytest.raises(ValueError, match="categories"):
        Occlude(templates=library, categories=("pizza",))
    with pytest.raises(ValueError, match="region"):
        Occlude(templates=library, region="ear")
    with pytest.raises(ValueError, match="coverage_range"):
        Occlude(templates=library, coverage_range=(0.5, 0.2))
    with pytest.raises(ValueError, match="kind"):
        BlockOcclude(kind="r12")


def test_coverage_is_a_deprecated_alias_of_coverage_range(library):
    with pytest.warns(DeprecationWarning, match="coverage_range"):
        occ = Occlude(templates=library, categories=("food",), coverage=(0.2, 0.3))
    assert occ.coverage_range == (0.2, 0.3)


def test_apply_rejects_params_for_another_image_size(library, faces):
    image, lm = faces[0]
    occ = Occlude(templates=library, categories=("food",))
    params = occ.get_params(image, lm, np.random.default_rng(0))
    with pytest.raises(OcclusionSynthError, match="drawn for"):
        occ.apply(np.zeros((50, 50, 3), np.uint8), params)


def test_random_blocks_on_a_48px_crop_have_paper_sizes(faces):
    import cv2

    image, lm = faces[0]
    small = cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA)
    lm48 = (lm + 0.5) * 48 / image.shape[0] - 0.5
    for kind, side in (("r8", 8), ("r16", 16), ("r24", 24)):
        res = BlockOcclude(kind=kind, fill="grey")(small, lm48, np.random.default_rng(0))
        ys, xs = np.nonzero(res["mask"])
        assert ys.ptp() + 1 == side and xs.ptp() + 1 == side


def test_default_library_is_the_shipped_one_and_missing_categories_are_reported(library):
    occ = Occlude(categories=("mask", "block"))
    assert len(occ.library.by_category("mask")) >= 10 and occ.categories == ("mask", "block")
    from occlusion_synth.errors import TemplateError
    from occlusion_synth.templates import TemplateLibrary

    only_food = TemplateLibrary([library.get("food/apple")])
    assert Occlude(templates=only_food).categories == ("food", "block")  # others have no templates
    with pytest.raises(TemplateError, match="none of the requested categories"):
        Occlude(templates=only_food, categories=("hand", "mask"))
