"""Image I/O: one place that turns any image file into ``(H, W, 3) uint8 RGB`` and writes atomically.

Decoding goes through Pillow (it names what is wrong with a file) and handles grayscale,
palette, RGBA/LA (composited on black), CMYK, 16-bit and EXIF orientation.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os
import threading
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Optional, Union

import numpy as np

from .errors import ImageReadError

#: File suffixes (lower case) treated as images by readers, preview, landmarks and predict.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})

PathLike = Union[str, os.PathLike]


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode encoded image bytes to ``(H, W, 3) uint8 RGB``.

    ``max_pixels``: refuse larger images (default: Pillow's own decompression-bomb limit).

    Raises:
        ImageReadError: empty, truncated or non-image data (the message names ``name``).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if max_pixels is not None:
                _check_pixels(*im.size, name, max_pixels)
            im.load()
            im = ImageOps.exif_transpose(im)
            return to_rgb_array(im, name)
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name}: cannot decode image ({exc})") from None
    except Image.DecompressionBombError:
        raise ImageReadError(f"{name}: image too large: over the decoder's pixel limit") from None


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


DEFAULT_MAX_FILE_SIZE = 256 * 1024 * 1024  # bytes; larger files are refused before reading
DEFAULT_MAX_PIXELS = 40_000_000  # width x height from the header; larger images are refused before decoding


def read_file_bytes(path: PathLike, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> bytes:
    """Read a *regular* file of at most ``max_file_size`` bytes.

    The file is opened non-blocking and checked with ``fstat`` on the open descriptor, so a FIFO
    never blocks, a device (``/dev/zero``, also behind a symlink) or a directory is never read,
    and a huge (or sparse) file is refused before any byte is read.

    Raises:
        ImageReadError: missing, unreadable, not a regular file, or over the size limit.
    """
    import stat

    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ImageReadError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise ImageReadError(f"{p}: not a regular file (a directory)") from None
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read file ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a plain file")
            raise ImageReadError(f"{p}: not a regular file ({kind})")
        if st.st_size > max_file_size:
            raise ImageReadError(f"{p}: file too large: {st.st_size} bytes (limit max_file_size = "
                                 f"{max_file_size} bytes)")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(max_file_size + 1)
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read file ({exc.strerror or exc})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_file_size:  # grew while reading
        raise ImageReadError(f"{p}: file too large: over {max_file_size} bytes (limit max_file_size)")
    return data


def _check_pixels(w: int, h: int, name: str, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise ImageReadError(f"{name}: image too large: {w}x{h} = {w * h} pixels (limit max_pixels = {max_pixels})")


def check_header(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Read only the image header: ``(width, height)``; refuse images over ``max_pixels``.

    Raises:
        ImageReadError: empty, not an image, or ``width * height > max_pixels`` (a decompression bomb).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # opening reads only the header; the size is checked below
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name}: cannot decode image ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    _check_pixels(w, h, name, max_pixels)
    return w, h


_JPEG_SOF = (0xC0, 0xC1, 0xC2)  # baseline, extended, progressive (Huffman)
_JPEG_MAX_SEGMENTS = 256  # header segments read before the start of scan, at most


def _plain_jpeg_size(data: bytes) -> Optional[tuple[int, int]]:
    """``(width, height)`` of a JPEG that OpenCV decodes to exactly the pixels of the Pillow path:
    8-bit, 1 or 3 components, Huffman-coded, no EXIF block (orientation), complete (ends with the
    EOI marker). None for anything else."""
    if data[:3] != b"\xff\xd8\xff" or data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        return None
    pos, n = 2, len(data)
    size = None
    for _ in range(_JPEG_MAX_SEGMENTS):  # a file of countless tiny segments goes to Pillow
        if pos + 4 > n:
            return None
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xE1 and data[pos + 4:pos + 10] == b"Exif\x00\x00":
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if size or marker not in _JPEG_SOF or pos + 10 > n or data[pos + 4] != 8 or data[pos + 9] not in (1, 3):
                return None
            size = int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        if marker == 0xDA:  # start of scan: every header segment (EXIF included) was seen
            return size
        if length < 2:
            return None
        pos += 2 + length
    return None


def decode_checked(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """:func:`check_header` then :func:`decode_image`, with a fast path: a plain JPEG
    (:func:`_plain_jpeg_size`) is sized from its frame header and decoded by OpenCV, 3-4x faster
    than through Pillow and to the same pixels (libjpeg-turbo in both; tests/test_io_decode.py). Anything
    else, or a JPEG OpenCV cannot decode, takes the Pillow path and its error messages."""
    size = _plain_jpeg_size(data)
    if size is not None:
        w, h = size
        _check_pixels(w, h, name, max_pixels)
        import cv2

        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if w * h else None
        if bgr is not None and bgr.shape[:2] == (h, w):
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    check_header(data, name, max_pixels)
    return decode_image(data, name, max_pixels)


def read_image(path: PathLike, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8 RGB``, checking it before decoding.

    Only regular files are opened (:func:`read_file_bytes`); the header is read first and images
    over ``max_pixels`` are refused (:func:`check_header`).

    Raises:
        ImageReadError: the file is missing, not a regular file, too large, unreadable, empty,
            truncated or not an image.
    """
    p = Path(path)
    return decode_checked(read_file_bytes(p, max_file_size), str(p), max_pixels)


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 95,
                 png_compression: Optional[int] = None) -> bytes:
    """Encode ``(H, W, 3) uint8 RGB`` or ``(H, W) uint8`` to PNG or JPEG bytes (deterministic).

    ``png_compression`` is zlib's level (0-9, through OpenCV); None (default) writes colour
    images with :func:`encode_png_fast` and grey ones (masks) with OpenCV's own setting (fast
    zlib level, no row filter: 0.03 ms and 0.4 KB for a 100 px 0/255 mask). Earlier measures,
    300 demo faces of 100 px, CPU time per image: OpenCV's setting 0.41 ms and 18.8 KB, level 1
    0.71 ms and 16.5 KB, level 3 0.99 ms and 16.1 KB, Huffman coding only 0.29-0.30 ms and 18.8 KB;
    :func:`encode_png_fast` is measured in docs/performance.md.
    """
    import cv2

    fmt = fmt.lower().lstrip(".")
    if fmt == "png" and png_compression is None and image.ndim == 3:
        return encode_png_fast(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if fmt == "png":
        params = [] if png_compression is None else [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
        ok, buf = cv2.imencode(".png", image, params)
    elif fmt in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        raise ValueError(f"format must be 'png' or 'jpg', got {fmt!r}")
    if not ok:
        raise OSError(f"could not encode image as {fmt}")
    return buf.tobytes()


def _deflate(use_isal: bool = True) -> Callable[[bytes], bytes]:
    """``compress(data) -> zlib stream``: ISA-L's level 1 when ``isal`` is installed (a third of
    zlib's time on image rows, smaller output than zlib's Huffman-only), else (or with
    ``use_isal=False``) zlib's Huffman-only coding at level 1."""
    if use_isal:
        try:
            from isal import isal_zlib
        except ImportError:
            pass
        else:
            return lambda data: isal_zlib.compress(data, 1)
    import zlib

    def compress(data: bytes) -> bytes:
        c = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_HUFFMAN_ONLY)
        return c.compress(data) + c.flush()
    return compress


_DEFLATE: Optional[Callable[[bytes], bytes]] = None  # chosen on the first PNG


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import zlib

    return len(body).to_bytes(4, "big") + kind + body + (zlib.crc32(body, zlib.crc32(kind))).to_bytes(4, "big")


def encode_png_fast(image: np.ndarray) -> bytes:
    """A standard 8-bit PNG of ``(H, W, 3) uint8 RGB`` or ``(H, W) uint8`` grey, written here.

    Every row uses PNG's ``Up`` filter (the difference to the row above: faces and occluders
    are smooth top to bottom, so the differences are small numbers that code short), made by one
    numpy subtraction instead of libpng's per-row filter trials, and the rows are deflated by
    ISA-L (``isal``) or zlib (see :func:`_deflate`). Any PNG reader decodes it; the bytes depend
    on which deflate coder is installed, the pixels never do.
    """
    global _DEFLATE
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected (H, W, 3) or (H, W) uint8, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"cannot encode an empty image {img.shape}")
    rows = img.reshape(h, -1)
    raw = np.empty((h, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = 2  # filter type Up; on the first row (above it: zeros) it stores the row as is
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 arithmetic wraps mod 256, as PNG's does
    if _DEFLATE is None:
        _DEFLATE = _deflate()
    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes((8, 2 if img.ndim == 3 else 0, 0, 0, 0))
    return b"".join((b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header),
                     _png_chunk(b"IDAT", _DEFLATE(raw.tobytes())), _png_chunk(b"IEND", b"")))


CACHE_ENV = "OCCSYNTH_CACHE_DIR"


def user_cache_dir(name: str) -> Optional[Path]:
    """The folder of the cache ``name`` (``templates``, ``models``): ``$OCCSYNTH_CACHE_DIR/name``
    (None when that is set to ``off``, ``0``, ``none`` or empty), else
    ``$XDG_CACHE_HOME/occlusion_synth/name``, else ``~/.cache/occlusion_synth/name``."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "none") else Path(value) / name
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "occlusion_synth" / name


_TEMP_COUNTER = itertools.count()


def _temp_name(path: PathLike) -> str:
    """A temporary name beside ``path`` no other writer uses: ``.NAME.PID.TID.N.tmp``
    (process, thread and a per-process counter; created with ``O_EXCL`` anyway). Plain string
    operations: generation writes three files per pair, and pathlib's parsing cost ~20 us each."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.{next(_TEMP_COUNTER)}.tmp")


def atomic_write_bytes(path: PathLike, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    A crash at any point leaves either the old file or the complete new one, never a partial file.
    ``fsync=True`` also flushes the data to disk before the rename (checkpoints: survives a power
    loss, at a cost that generation's many small files do not pay).
    """
    with _replacing(path) as fd:
        try:  # the raw descriptor: no Python file object for what is one write
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_lines(path: PathLike, *chunks: Iterable[str]) -> None:
    """Write text lines (UTF-8, no newline translation) atomically, streaming each iterable of
    ``chunks`` in turn (e.g. a header list, then a generator of rows)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        for lines in chunks:
            fh.writelines(lines)


def _create_temp(path: str) -> tuple[int, str]:
    """Create and open a new temporary file beside ``path`` (its folder made on the first miss);
    a name left by a killed process with the same pid is skipped, never reused."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = _temp_name(path)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:  # first file of a folder (no stat before every write)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            return os.open(tmp, flags, 0o666), tmp
    folder, name = os.path.split(path)
    raise FileExistsError(f"{folder}: could not create a temporary file for {name} "
                          "(100 names taken by stale .tmp files)")


@contextlib.contextmanager
def _replacing(path: PathLike) -> Iterator[int]:
    """The descriptor of a new temporary file beside ``path``, which the block must close; on a
    clean exit the file replaces ``path`` (``os.replace``), on an exception it is removed. The
    file gets the mode ``open()`` would give it (0666 minus the umask). Missing parent folders
    are created."""
    p = os.fspath(path)
    fd, tmp = _create_temp(p)
    try:
        yield fd
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` (``os.replace``),
    on an exception it is removed (:func:`_replacing`)."""
    with _replacing(path) as fd, os.fdopen(fd, mode, **kwargs) as fh:
        yield fh


def write_image(path: PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Atomically write an RGB or single-channel image; the format follows the file suffix."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write_bytes(path, encode_image(image, fmt, quality))
