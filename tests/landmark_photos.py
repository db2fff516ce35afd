"""Real photos for the detection tests and benchmarks/landmark_detection.py, read in memory.

Beyond the cached demo photos (occlusion_synth.photos), three more ship in packages the project
already has, and are read without writing anything to the shared cache:

* ``camera.png``: scikit-image's "cameraman" (grayscale, head turned about 45 degrees, face
  partly behind a camera), from the scikit-image wheel fetched by occlusion_synth.photos;
* ``obama_partial_face.jpg``: face_recognition's test image with the face at the frame edge,
  from the sdist fetched by occlusion_synth.photos;
* ``grace_hopper.jpg``: matplotlib's sample photo (U.S. Navy portrait, public domain).

No package ships a group photo, so :func:`group_canvas` tiles several of them side by side.
"""
from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import numpy as np

from occlusion_synth.io import decode_image
from occlusion_synth.photos import PHOTOS, fetch_photos

# name -> (package of occlusion_synth.photos.PHOTOS whose archive holds it, member)
_IN_ARCHIVES = {
    "camera.png": ("scikit-image==0.26.0", "skimage/data/camera.png"),
    "obama_partial_face.jpg": ("face_recognition==1.3.0",
                               "face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg"),
}
EXTRA_PHOTOS = ("camera.png", "obama_partial_face.jpg", "grace_hopper.jpg")


def _archive(cache: Path, package: str) -> Path:
    name = package.split("==")[0].replace("-", "_").lower()
    found = [p for p in (cache / "downloads").glob("*") if p.name.lower().startswith(name)]
    if not found:  # photos extracted earlier but archives removed: fetch again through pip
        from occlusion_synth.photos import _pip_download

        return _pip_download(package, cache / "downloads", sdist=package.startswith("face_recognition"))
    return found[0]


def extra_photo(name: str, cache: Path) -> np.ndarray:
    """One of :data:`EXTRA_PHOTOS` as ``(H, W, 3) uint8 RGB`` (grayscale as equal channels)."""
    if name == "grace_hopper.jpg":
        from matplotlib import cbook

        data = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
    else:
        package, member = _IN_ARCHIVES[name]
        assert any(p.package == package for p in PHOTOS), package
        fetch_photos(cache)
        archive = _archive(cache, package)
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                data = zf.read(member)
        else:
            with tarfile.open(archive) as tf:
                data = tf.extractfile(member).read()
    return decode_image(data, name)


def resize_long(image: np.ndarray, side: int) -> np.ndarray:
    """Area-downscale (or bicubic-upscale) so the long side is ``side`` pixels."""
    import cv2

    s = side / max(image.shape[:2])
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, None, fx=s, fy=s, interpolation=interp))


def to_gray3(image: np.ndarray) -> np.ndarray:
    """Luma copy as three equal channels (what a grayscale photo decodes to)."""
    import cv2

    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))


def group_canvas(photos: list[np.ndarray], face_px: list[int]) -> np.ndarray:
    """A synthetic group photo: each photo scaled so dlib's face box is ``face_px`` wide, cut to a
    cell around the face (2.6 x the largest face wide, 3.2 x high, face in the upper half) and
    the cells placed side by side (neutral grey where a photo does not fill its cell).

    Returns:
        ``(H, W, 3) uint8 RGB``.
    """
    import cv2

    from occlusion_synth.landmarks import get_backend

    dlib = get_backend("dlib")
    big = max(face_px)
    cw, ch = int(2.6 * big), int(3.2 * big)
    cells = []
    for photo, px in zip(photos, face_px):
        box = dlib.detect(photo)[0].box
        s = px / float(box[2] - box[0])
        scaled = cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        cx, cy = (box[0] + box[2]) / 2 * s, (box[1] + box[3]) / 2 * s
        x0, y0 = int(round(cx - cw / 2)), int(round(cy - ch * 0.4))
        matrix = np.array([[1.0, 0, -x0], [0, 1.0, -y0]])
        cells.append(cv2.warpAffine(scaled, matrix, (cw, ch), flags=cv2.INTER_NEAREST,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128)))
    return np.ascontiguousarray(np.concatenate(cells, axis=1))
