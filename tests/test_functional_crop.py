"""The one face-crop kernel (occlusion_synth.functional.crop)."""
from __future__ import annotations

import numpy as np
import pytest

from occlusion_synth.functional import CropBox, crop_square, face_crop, face_crop_box, resize_image


def _face_points(x0, y0, x1, y1, n=68):
    t = np.linspace(0, 1, n)
    return np.stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t[::-1]], axis=1)


def test_box_is_square_centred_and_raised_for_the_forehead():
    lm = _face_points(40, 50, 80, 100)  # box 40 x 50
    box = face_crop_box(lm, margin=0.25)
    assert box.side == round(50 * 1.5)
    assert box.left == round(60 - box.side / 2)
    assert box.top == round(75 - 0.1 * 50 - box.side / 2)


def test_crop_moves_landmarks_with_the_pixels():
    img = np.zeros((120, 140, 3), np.uint8)
    img[70, 60] = (255, 0, 0)  # a marked pixel at a landmark
    lm = _face_points(40, 50, 80, 100)
    lm[0] = (60, 70)
    res = face_crop(img, lm, margin=0.2)
    x, y = np.round(res.landmarks[0]).astype(int)
    assert tuple(res.image[y, x]) == (255, 0, 0)
    assert res.image.shape[0] == res.image.shape[1] == res.box.side


def test_window_outside_the_frame_is_black_padding():
    img = np.full((50, 50, 3), 200, np.uint8)
    out = crop_square(img, CropBox(-10, -10, 30))
    assert out.shape == (30, 30, 3)
    assert (out[:10] == 0).all() and (out[:, :10] == 0).all() and (out[10:, 10:] == 200).all()
    assert (crop_square(img, CropBox(100, 100, 8)) == 0).all()


def test_resize_square_and_longer_side():
    img = np.zeros((40, 80, 3), np.uint8)
    out, lm = resize_image(img, np.array([[79.5, 39.5]]), 40)
    assert out.shape == (20, 40, 3)
    np.testing.assert_allclose(lm, [[39.5, 19.5]])
    assert face_crop(np.zeros((30, 30, 3), np.uint8), _face_points(5, 5, 25, 25), size=64).image.shape == (64, 64, 3)


def test_whole_frame_when_crop_is_off():
    img = np.arange(30 * 20 * 3, dtype=np.uint8).reshape(30, 20, 3)
    res = face_crop(img, _face_points(5, 5, 15, 25), crop=False)
    assert res.box is None and np.array_equal(res.image, img)


@pytest.mark.parametrize("bad", [np.zeros((68, 3)), np.full((68, 2), np.nan), np.zeros((1, 2))])
def test_bad_landmarks_are_refused(bad):
    with pytest.raises(ValueError, match="landmarks"):
        face_crop_box(bad)
