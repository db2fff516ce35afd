"""Image I/O: one place that turns any image file into ``(H, W, 3) uint8 RGB`` and writes atomically.

Decoding goes through Pillow (it names what is wrong with a file) and handles grayscale,
palette, RGBA/LA (composited on black), CMYK, 16-bit and EXIF orientation.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

from .errors import ImageReadError

PathLike = Union[str, os.PathLike]


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to ``(H, W, 3) uint8 RGB``.

    Raises:
        ImageReadError: empty, truncated or non-image data (the message names ``name``).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return to_rgb_array(im, name)
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name}: cannot decode image ({exc})") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{name}: image too large ({exc})") from None


def to_rgb_array(im, name: str = "<image>") -> np.ndarray:
    """Convert a PIL image of any mode to ``(H, W, 3) uint8 RGB``."""
    from PIL import Image

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        return np.repeat(np.clip(arr + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        im = Image.alpha_composite(background, rgba)
    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageReadError(f"{name}: unsupported image layout {arr.shape}")
    return np.ascontiguousarray(arr)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8 RGB``.

    Raises:
        ImageReadError: the file is missing, unreadable, empty, truncated or not an image.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise ImageReadError(f"{p}: is a directory, not an image file") from None
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read file ({exc.strerror or exc})") from None
    return decode_image(data, str(p))


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 95, png_compression: int = 1) -> bytes:
    """Encode ``(H, W, 3) uint8 RGB`` or ``(H, W) uint8`` to PNG or JPEG bytes (deterministic).

    ``png_compression`` is zlib's level (0-9). Level 1 is the default: on 100 px faces it
    encoded 0.52 ms vs 0.63 ms at level 3 (1 % larger files), measured on this project's CPU.
    """
    import cv2

    fmt = fmt.lower().lstrip(".")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)])
    elif fmt in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        raise ValueError(f"format must be 'png' or 'jpg', got {fmt!r}")
    if not ok:
        raise OSError(f"could not encode image as {fmt}")
    return buf.tobytes()


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_file_mode()  # what open() would give; mkstemp alone gives 0600


def atomic_write_bytes(path: PathLike, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    A crash at any point leaves either the old file or the complete new one, never a partial file.
    ``fsync=True`` also flushes the data to disk before the rename (checkpoints: survives a power
    loss, at a cost that generation's many small files do not pay).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_image(path: PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Atomically write an RGB or single-channel image; the format follows the file suffix."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write_bytes(path, encode_image(image, fmt, quality))
