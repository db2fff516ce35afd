"""io.decode_checked: the OpenCV fast path for plain JPEGs gives Pillow's pixels, and every other
file (EXIF orientation, CMYK, truncated, oversized) keeps the Pillow path and its messages."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from occlusion_synth.errors import ImageReadError
from occlusion_synth.io import _plain_jpeg_size, check_header, decode_checked, decode_image


def _jpeg(image: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def face(photo_arrays) -> np.ndarray:
    return photo_arrays["obama.jpg"][::3, ::3].copy()


def _variants(face: np.ndarray) -> dict:
    return {"q90": _jpeg(face, quality=90), "444": _jpeg(face, quality=75, subsampling=0),
            "progressive": _jpeg(face, quality=80, progressive=True), "422": _jpeg(face, quality=60, subsampling=1),
            "grey": _jpeg(face[..., 1], quality=85), "odd size": _jpeg(face[:97, :61], quality=70)}


def test_plain_jpegs_take_the_fast_path_and_decode_to_pillows_pixels(face, photos):
    variants = _variants(face)
    files = dict(variants, **{name: p.read_bytes() for name, p in photos.items() if name.endswith(".jpg")})
    for name, data in files.items():
        size = _plain_jpeg_size(data)
        if name in variants:
            assert size == check_header(data), name  # the frame header gives Pillow's size
        else:  # camera files carry EXIF: Pillow path (orientation)
            assert size is None or size == check_header(data), name
        fast, slow = decode_checked(data, name), decode_image(data, name)
        assert fast.dtype == np.uint8 and fast.shape == slow.shape and np.array_equal(fast, slow), name


def test_other_files_take_the_pillow_path(face):
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(face).save(rotated, "JPEG", exif=exif)
    data = rotated.getvalue()
    assert _plain_jpeg_size(data) is None
    assert decode_checked(data).shape == (face.shape[1], face.shape[0], 3)  # Pillow applied the rotation
    cmyk = io.BytesIO()
    Image.fromarray(face).convert("CMYK").save(cmyk, "JPEG")
    assert _plain_jpeg_size(cmyk.getvalue()) is None
    png = io.BytesIO()
    Image.fromarray(face).save(png, "PNG")
    assert _plain_jpeg_size(png.getvalue()) is None
    assert np.array_equal(decode_checked(png.getvalue()), face)


def test_a_truncated_jpeg_is_an_error_not_a_grey_filled_image(face):
    data = _jpeg(face, quality=90)
    cut = data[:len(data) // 2]
    assert _plain_jpeg_size(cut) is None  # no end-of-image marker
    with pytest.raises(ImageReadError, match="cut.jpg"):
        decode_checked(cut, "cut.jpg")


def test_a_decompression_bomb_is_refused_from_its_frame_header(face):
    data = bytearray(_jpeg(face[:8, :8], quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (30000).to_bytes(2, "big") + (30000).to_bytes(2, "big")  # height, width
    with pytest.raises(ImageReadError, match="bomb.jpg: image too large: 30000x30000"):
        decode_checked(bytes(data), "bomb.jpg", max_pixels=40_000_000)


def test_header_scan_sees_a_late_exif_block_and_gives_up_on_endless_segments(face):
    data = _jpeg(face[:16, :16], quality=90)
    sof = data.index(b"\xff\xc0")
    end = sof + 2 + int.from_bytes(data[sof + 2:sof + 4], "big")
    app1 = b"\xff\xe1" + (2 + 6 + 8).to_bytes(2, "big") + b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00"
    assert _plain_jpeg_size(data) == (16, 16)
    assert _plain_jpeg_size(data[:end] + app1 + data[end:]) is None  # EXIF after the frame header
    comment = b"\xff\xfe\x00\x03x"  # a 1-byte COM segment
    assert _plain_jpeg_size(data[:2] + comment * 300 + data[2:]) is None  # Pillow's job
    assert np.array_equal(decode_checked(data[:2] + comment * 300 + data[2:]), decode_image(data))
