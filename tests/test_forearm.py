"""Hands come with their forearm: the wrist is continued to the photo's edge (or fades out)."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

from occlusion_synth import placement as P
from occlusion_synth.functional.forearm import MAX_LENGTH, has_forearm, over, render_forearm
from occlusion_synth.transforms import Occlude


def _hand_template(cut_at_wrist: bool = True) -> np.ndarray:
    """A 60x40 'hand': a disc (palm) over a wrist band reaching the bottom edge (or not)."""
    rgba = np.zeros((60, 40, 4), np.uint8)
    cv2.circle(rgba, (20, 22), 16, (200, 150, 120, 255), -1)
    bottom = 59 if cut_at_wrist else 45
    cv2.rectangle(rgba, (12, 30), (28, bottom), (190, 140, 110, 255), -1)
    return rgba


def test_only_templates_cut_at_the_wrist_have_a_forearm():
    assert has_forearm(_hand_template(True))
    assert not has_forearm(_hand_template(False))
    assert render_forearm(_hand_template(False), np.array([[1.0, 0, 10], [0, 1.0, 10]]), (200, 200)) is None


def test_forearm_reaches_the_border_below_the_wrist_with_the_wrist_colour():
    rgba = _hand_template()
    m = np.array([[0.5, 0, 40], [0, 0.5, 20]])  # the wrist line ends at y = 20 + 0.5 * 59.5 ~ 50
    rgb, alpha, (x0, y0, x1, y1) = render_forearm(rgba, m, (80, 120))
    assert y1 == 80                          # down to the bottom edge of an 80 px high image
    assert y0 <= 50 and 42 <= x0 and x1 <= 58  # under the wrist (x 46..54), a little wider
    col = alpha[:, alpha.shape[1] // 2]
    assert col[-1] > 0.9                     # opaque at the border
    inside = alpha > 0.5
    assert np.allclose(rgb[inside].mean(0), (190, 140, 110), atol=3)


def test_a_long_way_to_the_border_stops_as_a_forearm_and_fades():
    rgba = _hand_template()
    rgb, alpha, (x0, y0, x1, y1) = render_forearm(rgba, np.array([[0.5, 0, 40], [0, 0.5, 20]]), (1000, 120))
    assert y1 - 50 < MAX_LENGTH * 60 * 0.5 + 4
    assert alpha[-1].max() < 0.05 and alpha[:5].max() > 0.9
    fading = (alpha > 0.05) & (alpha < 0.5)  # the fade lowers alpha, not the arm's colour
    assert fading.any() and np.allclose(rgb[fading].mean(0), (190, 140, 110), atol=3)


def test_over_keeps_the_front_patch_on_top():
    a = (np.full((4, 4, 3), 10.0, np.float32), np.ones((4, 4), np.float32), (0, 0, 4, 4))
    b = (np.full((4, 8, 3), 200.0, np.float32), np.ones((4, 8), np.float32), (2, 2, 10, 6))
    rgb, alpha, box = over(a, b)
    assert box == (0, 0, 10, 6)
    assert np.allclose(rgb[2:4, 2:4], 10.0) and np.allclose(rgb[4:6, 6:10], 200.0)
    assert alpha[0, 6] == 0 and over(a, None) is a and over(None, b) is b


def test_shipped_hands_touch_the_edge_of_an_aligned_crop(photo_arrays):
    """On a face crop, the hand's footprint is one piece that reaches the crop's border (no hand
    ending in mid-air), and old params (no ``arm`` key) replay exactly as before."""
    from occlusion_synth.landmarks import detect
    from occlusion_synth.preview import crop_face

    face = detect(photo_arrays["obama.jpg"], backend="dlib", max_side=640)[0]
    img, lm = crop_face(photo_arrays["obama.jpg"], face.landmarks, 100)
    occ = Occlude(categories=("hand",))
    with_arm = 0
    for seed in range(6):
        params = occ.get_params(img, lm, np.random.default_rng(seed))
        assert params.placement["arm"] is True
        out, mask = occ.apply(img, params)
        n, labels = cv2.connectedComponents((mask > 0).astype(np.uint8))
        biggest = np.argmax(np.bincount(labels[mask > 0]))
        blob = labels == biggest
        assert blob[[0, -1]].any() or blob[:, [0, -1]].any(), f"seed {seed}: the hand floats"
        legacy = replace(params, placement={k: v for k, v in params.placement.items() if k != "arm"})
        old, _ = occ.apply(img, legacy)
        with_arm += bool((old != out).any())  # the arm shows (unless the wrist is off the crop)
        assert P.Placement(**legacy.placement).arm is False
    assert with_arm >= 3


@pytest.mark.parametrize("region", ["mouth", "eyes"])
def test_forearm_is_harmonised_with_the_hand(photo_arrays, region):
    """Darkening the photo darkens the forearm as it darkens the hand (one patch, one harmonisation)."""
    from occlusion_synth.landmarks import detect
    from occlusion_synth.preview import crop_face

    face = detect(photo_arrays["biden.jpg"], backend="dlib", max_side=640)[0]
    img, lm = crop_face(photo_arrays["biden.jpg"], face.landmarks, 100)
    dark = np.clip(img * 0.35, 0, 255).astype(np.uint8)
    occ = Occlude(categories=("hand",), region=region)
    params = occ.get_params(img, lm, np.random.default_rng(1))
    bright, mask = occ.apply(img, params)
    dim, _ = occ.apply(dark, replace(params, image_shape=params.image_shape))
    sel = mask > 0
    assert dim[sel].mean() < 0.6 * bright[sel].mean()
