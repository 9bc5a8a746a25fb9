"""Find photos and decode them into RGB arrays, whatever their format or quirks.

Decoding never raises for a bad file: :func:`load_photo` raises :class:`MediaError` with a
message a user can act on, and the scan records it and goes on.

Limits, so that one odd file can neither hang a scan nor exhaust memory:

- Only regular files are opened. FIFOs, sockets and device files are reported and skipped
  (opening a FIFO blocks forever; opening some devices has side effects).
- :data:`MAX_DECODE_PIXELS` (120 million pixels) is the most a photo is decoded at: a decode
  takes 8 to 10 bytes a pixel at its peak (measured: 8 for RGB, 10 for a palette image with
  transparency), so 1 to 1.2 GB per worker process at worst. A larger JPEG is decoded reduced
  (1/2, 1/4 or 1/8 of its width, which the JPEG decoder does cheaply) to fit; other formats
  have no reduced decode and are refused with a message before any pixel is decoded.

Speed: a JPEG is decoded only as finely as needed. The detector gets the coarsest of the
decoder's own reductions (1/2, 1/4, 1/8, done in the DCT domain: a 12 MP photo decodes in
~15 ms at 1/2 instead of ~50 ms in full) that still has the working resolution, shrunk the
rest of the way; :meth:`Photo.at_least` later gives the aligner a finer decode only when a
face is too small in this one. Plain YCbCr and greyscale JPEGs are decoded by OpenCV's
libjpeg-turbo straight into an array (Pillow's copy out of its own image memory costs as much
as the decode); CMYK, truncated and other unusual JPEGs take Pillow's path, as every other
format does. Formats without a reduced decode (PNG, HEIC, TIFF...) are decoded once: the
full-size pixels are kept for the aligner, never decoded a second time.
- Every page of a multi-page TIFF is read, up to :data:`MAX_TIFF_PAGES` (reduced-resolution
  thumbnail pages are not); an animated GIF, WebP or PNG is sampled like a video: up to
  :data:`MAX_ANIMATION_FRAMES` frames spread evenly from the first to the last.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import cv2
import numpy as np
from PIL import Image

try:  # HEIC/HEIF support is optional at import time but installed by default.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover
    pillow_heif = None

# Pillow's own bomb guard (it refuses past twice this). It stays above MAX_DECODE_PIXELS so that
# a large JPEG panorama can still be decoded reduced; MAX_DECODE_PIXELS bounds the memory.
Image.MAX_IMAGE_PIXELS = 400_000_000
MAX_DECODE_PIXELS = 120_000_000
MAX_TIFF_PAGES = 50
MAX_ANIMATION_FRAMES = 10
ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG"})

PHOTO_EXTENSIONS = frozenset(
    ".jpg .jpeg .jfif .jpe .png .webp .bmp .tif .tiff .gif .heic .heif".split()
)

_STRIP_PIXELS = 1 << 22  # convert large images a strip of ~4 million pixels at a time
_RESIZABLE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "CMYK", "I", "F", "La", "RGBa"})
_LEVEL_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_ROTATIONS = {  # EXIF orientation -> the numpy view that shows the photo upright
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1),
}


class MediaError(Exception):
    """A file that cannot be read as a photo; the message says why."""


@dataclass
class Photo:
    """A decoded photo (one frame of it).

    ``pixels`` is an RGB uint8 array, possibly reduced for speed; ``scale`` maps its
    coordinates back to the full-resolution, orientation-corrected photo
    (``full = reduced / scale``). ``size`` is the full (width, height). ``frame`` is the page or
    animation frame decoded and ``frames`` every frame of the file worth scanning, ``(0,)`` for
    an ordinary photo. :meth:`at_least` gives the same frame at a finer scale.
    """

    pixels: np.ndarray
    scale: float
    size: tuple[int, int]
    frame: int = 0
    frames: tuple[int, ...] = (0,)
    # finer(scale) -> (pixels, their scale): a decode at ``scale`` or finer; None: ``pixels``
    # are all there is (full size, or reduced by MAX_DECODE_PIXELS)
    finer: Callable[[float], tuple[np.ndarray, float]] | None = field(
        default=None, repr=False, compare=False)

    def at_least(self, scale: float) -> tuple[np.ndarray, float]:
        """RGB pixels of this frame at ``scale`` of full size or finer, and their exact scale.

        The coarsest decode that is fine enough (for a JPEG the decoder's own 1/8, 1/4 or 1/2
        reduction, or full size; the decode ``pixels`` were shrunk from when it suffices, so
        no second decode), never past :data:`MAX_DECODE_PIXELS`: a face's 150 px chip never
        needs a full 12 MP decode when the face is large. ``pixels`` themselves when nothing
        finer exists. Coordinates map as for ``pixels``: ``full = these / scale``.

        Examples
        --------
        >>> photo = load_photo("holiday.jpg", max_pixels=1e6)  # doctest: +SKIP
        >>> pixels, scale = photo.at_least(0.5)  # a 4000 x 3000 JPEG: its 1/2 decode
        >>> pixels.shape, scale
        ((1500, 2000, 3), 0.5)
        """
        if self.finer is None:
            return self.pixels, self.scale
        return self.finer(scale)


def find_photos(root: str | os.PathLike, exclude: list[Path] | None = None,
                skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every photo below ``root`` (or ``root`` itself if it is a file), sorted.

    Hidden folders and the folders in ``exclude`` (e.g. the output folder) are skipped. Only
    regular files are returned (and broken links, which the decode reports); FIFOs, sockets,
    devices and folders that cannot be read are added to ``skipped`` as (path, why), when given.
    """
    root = Path(root)
    if root.is_dir():
        candidates = _walk(root, exclude, skipped)
    else:
        candidates = [root] if os.path.lexists(root) else []
    found = []
    for path in candidates:
        problem = irregular_file(path)
        if problem is None:
            found.append(path)
        elif skipped is not None:
            skipped.append((path, problem))
    return sorted(found)


def _walk(root: Path, exclude: list[Path] | None, skipped: list | None) -> list[Path]:
    excluded = {p.resolve() for p in exclude or []}

    def unreadable(error: OSError) -> None:
        if skipped is not None:
            skipped.append((Path(error.filename), f"folder cannot be read ({error.strerror}): skipped"))

    found = []
    for folder, subfolders, files in os.walk(root, onerror=unreadable, followlinks=False):
        subfolders[:] = sorted(
            d for d in subfolders
            if not d.startswith(".") and (Path(folder) / d).resolve() not in excluded
        )
        found += [Path(folder) / f for f in files
                  if Path(f).suffix.lower() in PHOTO_EXTENSIONS and not f.startswith(".")]
    return found


def irregular_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` must not be opened (a FIFO, socket, device...), or None. Never opens it.

    A path that cannot be examined (a broken link, no permission) gives None: reading it then
    fails with the precise reason.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return _mode_problem(mode)


def _mode_problem(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")]
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"not a regular file ({kind}): skipped"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a file for reading; anything but a regular file raises :class:`MediaError`.

    The type is checked before opening, and again on the open file: opened non-blocking, a FIFO
    put in the file's place meanwhile cannot hang the scan.
    """
    problem = irregular_file(path)
    if problem:
        raise MediaError(problem)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        problem = _mode_problem(os.fstat(fd).st_mode)
        if problem:
            raise MediaError(problem)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def media_path(path: Path) -> str:
    """The name a file is stored under: its resolved path (the link's own path if broken)."""
    return str(path.resolve()) if path.exists() else str(path.absolute())


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes: recognises a photo after a move or a rename."""
    digest = hashlib.sha256()
    with open_regular(path) as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_photo(path: str | os.PathLike, max_pixels: float | None = None, frame: int = 0) -> Photo:
    """Decode a photo (one page or frame of it) as RGB with its EXIF orientation applied.

    Parameters
    ----------
    path : path-like
        The photo file.
    max_pixels : float, optional
        Decode at reduced size when the photo has more pixels than this. JPEGs use
        the decoder's draft mode (much faster than decoding fully and shrinking).
    frame : int
        The page (multi-page TIFF) or animation frame to decode; ``Photo.frames`` says which
        are worth scanning.

    Raises
    ------
    MediaError
        For an empty, truncated, unreadable, non-regular or non-image file, and for an image
        that would take more than :data:`MAX_DECODE_PIXELS` pixels to decode.

    Examples
    --------
    >>> photo = load_photo("holiday.jpg", max_pixels=2e6)  # doctest: +SKIP
    >>> photo.pixels.shape, photo.scale
    ((1224, 1632, 3), 0.4)
    """
    try:
        with open_regular(path) as file:
            if os.fstat(file.fileno()).st_size == 0:
                raise MediaError("empty file (0 bytes)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(file) as image:
                    fast = _fast_jpeg(image, file, frame)
                    if fast is not None:
                        return _decode_jpeg(image, fast, max_pixels, frame)
                    return _decode(image, max_pixels, frame, path)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(f"image too large: {exc}") from None
    except MemoryError:
        raise MediaError("not enough memory to decode this image") from None
    except (OSError, ValueError, SyntaxError, EOFError, RuntimeError) as exc:
        raise MediaError(_describe(exc)) from None


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "cannot identify image file" in text:
        return "not an image, or a format that cannot be read"
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return f"truncated or damaged image ({text})"
    if isinstance(exc, FileNotFoundError):
        return "file not found (a broken link, or removed during the scan)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return text


def frames_to_scan(image: Image.Image) -> tuple[int, ...]:
    """The pages of a multi-page TIFF (thumbnails left out) or sampled frames of an animation.

    A damaged later page or frame ends the list: the frames before it are still read.
    """
    try:
        count = getattr(image, "n_frames", 1)
    except (OSError, ValueError, SyntaxError, EOFError):
        return (0,)
    if count > 1 and image.format == "TIFF":
        return _tiff_pages(image, min(count, MAX_TIFF_PAGES))
    if count > 1 and image.format in ANIMATED_FORMATS:
        most = min(count, MAX_ANIMATION_FRAMES)
        return tuple(sorted({round(i * (count - 1) / (most - 1)) for i in range(most)}))
    return (0,)  # a still image, or e.g. the preview or second view of an MPO (multi-picture JPEG)


def _tiff_pages(image: Image.Image, count: int) -> tuple[int, ...]:
    pages = [0]
    for page in range(1, count):
        try:
            image.seek(page)
        except (OSError, ValueError, SyntaxError, EOFError):
            break
        subfile_type = image.tag_v2.get(254, 0)  # NewSubfileType; bit 0: a reduced-size copy
        if not (isinstance(subfile_type, int) and subfile_type & 1):
            pages.append(page)
    return tuple(pages)


def _decode(image: Image.Image, max_pixels: float | None, frame: int, path=None) -> Photo:
    frames = frames_to_scan(image)
    if frame >= getattr(image, "n_frames", 1):
        raise MediaError(f"no frame {frame} in this image")
    image.seek(frame)
    full_w, full_h = image.size
    if image.format in ("JPEG", "MPO"):
        _draft(image, max_pixels)
    _refuse_if_too_large(image)
    orientation = _orientation(image)  # after the size check: Pillow decodes a PNG to find its EXIF
    if orientation in (5, 6, 7, 8):
        full_w, full_h = full_h, full_w
    image.load()  # raises here for truncated data
    finer = None
    if max_pixels and image.width * image.height > max_pixels * 1.05:
        if image.format in ("JPEG", "MPO"):  # CMYK or unusual: decode again, finer, when needed
            pixels = _reduced_array(image, max_pixels)
            finer = _reload(path, frame) if path is not None else None
        else:  # no reduced decode: keep the full-size pixels for the aligner
            full = _to_array(image)
            image.close()
            full = _upright(full, orientation)
            pixels = _shrink(full, max_pixels)
            return Photo(pixels=pixels, scale=pixels.shape[1] / full_w, size=(full_w, full_h),
                         frame=frame, frames=frames,
                         finer=lambda scale: (full, full.shape[1] / full_w))
    else:
        pixels = _to_array(image)
    image.close()  # free the decoded image before rotating a copy of its pixels
    pixels = _upright(pixels, orientation)
    return Photo(pixels=pixels, scale=pixels.shape[1] / full_w, size=(full_w, full_h),
                 frame=frame, frames=frames, finer=finer)


def _reload(path, frame: int) -> Callable[[float], tuple[np.ndarray, float]]:
    def finer(scale: float) -> tuple[np.ndarray, float]:
        photo = load_photo(path, frame=frame)  # as fine as MAX_DECODE_PIXELS allows
        return photo.pixels, photo.scale
    return finer


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    return np.ascontiguousarray(_ROTATIONS[orientation](pixels)) if orientation > 1 else pixels


def _shrink(pixels: np.ndarray, max_pixels: float) -> np.ndarray:
    """``pixels`` resized to about ``max_pixels``: averaged over whole blocks of pixels first
    (OpenCV's fast integer-ratio path), then bilinear for the last factor below 2, which costs
    a sixth of area averaging at a fractional ratio and finds the same faces."""
    height, width = pixels.shape[:2]
    if width * height <= max_pixels * 1.05:
        return pixels
    shrink = (width * height / max_pixels) ** 0.5
    size = (max(1, round(width / shrink)), max(1, round(height / shrink)))
    block = int(shrink)
    if block >= 2:
        pixels = cv2.resize(pixels, (width // block, height // block), interpolation=cv2.INTER_AREA)
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)


def _draft_factor(width: int, height: int, max_pixels: float | None) -> int:
    """The JPEG reduction (1, 2, 4 or 8) for ``max_pixels``, within MAX_DECODE_PIXELS."""
    pixels = width * height
    factors = [f for f in (1, 2, 4, 8) if pixels / f ** 2 <= MAX_DECODE_PIXELS] or [8]
    factor = factors[0]  # the least reduction that fits in memory
    if max_pixels:  # the most reduction that still keeps max_pixels
        factor = max([factor] + [f for f in (1, 2, 4, 8) if pixels / f ** 2 >= max_pixels])
    return factor


def _draft(image: Image.Image, max_pixels: float | None) -> None:
    """Have the JPEG decoder reduce: enough for ``max_pixels``, and within MAX_DECODE_PIXELS."""
    factor = _draft_factor(image.width, image.height, max_pixels)
    if factor > 1:
        image.draft("RGB", (image.width // factor, image.height // factor))


# -- JPEG: OpenCV's decoder, reduced in the DCT domain -----------------------------------------
_CV_FLAGS = {1: 0, 2: cv2.IMREAD_REDUCED_COLOR_2 & ~cv2.IMREAD_COLOR,
             4: cv2.IMREAD_REDUCED_COLOR_4 & ~cv2.IMREAD_COLOR,
             8: cv2.IMREAD_REDUCED_COLOR_8 & ~cv2.IMREAD_COLOR}


def _fast_jpeg(image: Image.Image, file: BinaryIO, frame: int) -> np.ndarray | None:
    """The file's bytes when OpenCV can decode this JPEG exactly as Pillow would, else None.

    That is a complete (not truncated), 8-bit YCbCr or greyscale JPEG, first frame: CMYK,
    12-bit and damaged files go through Pillow, which reports them precisely."""
    if image.format not in ("JPEG", "MPO") or frame != 0 or image.mode not in ("RGB", "L"):
        return None
    if not image.tile or image.tile[0][0] != "jpeg" or getattr(image, "bits", 8) != 8:
        return None
    file.seek(0)
    raw = file.read()
    start = _scan_start(raw)
    # entropy-coded data never holds FF D9 (end of image): one after the start of the scan means
    # the file is whole (an EXIF thumbnail's own FF D9 comes before it, inside its segment)
    if start is None or raw.find(b"\xff\xd9", start) < 0:
        return None
    return np.frombuffer(raw, np.uint8)


def _scan_start(data: bytes) -> int | None:
    """Offset of the first scan's entropy-coded data: the JPEG's segments walked by their
    lengths from the start-of-image marker to the first start-of-scan; None if malformed."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2:
            return None
        if marker == 0xDA:  # start of scan
            return pos + 2 + length
        pos += 2 + length
    return None


def _decode_jpeg(image: Image.Image, data: np.ndarray, max_pixels: float | None, frame: int) -> Photo:
    frames = frames_to_scan(image)
    full_w, full_h = image.size
    orientation = _orientation(image)
    factor = _draft_factor(full_w, full_h, max_pixels)
    reduced = (-(-full_w // factor), -(-full_h // factor))
    if reduced[0] * reduced[1] > MAX_DECODE_PIXELS:
        raise MediaError(f"image too large to decode: {reduced[0]} x {reduced[1]} is "
                         f"{reduced[0] * reduced[1] / 1e6:.0f} million pixels, the limit is "
                         f"{MAX_DECODE_PIXELS / 1e6:.0f} million (about 1 GB of memory)")
    floor = _draft_factor(full_w, full_h, None)  # the finest decode memory allows
    if orientation in (5, 6, 7, 8):
        full_w, full_h = full_h, full_w
    image.close()
    decoded = _cv_decode(data, factor, orientation)
    pixels = _shrink(decoded, max_pixels) if max_pixels else decoded
    decodes: dict[int, np.ndarray] = {}

    def finer(scale: float) -> tuple[np.ndarray, float]:
        fine = max([f for f in (1, 2, 4, 8) if f >= floor and 1 / f >= scale - 1e-9] or [floor])
        if fine >= factor:
            return decoded, decoded.shape[1] / full_w
        if fine not in decodes:
            decodes.clear()  # one finer decode at a time: memory stays bounded
            decodes[fine] = _cv_decode(data, fine, orientation)
        return decodes[fine], decodes[fine].shape[1] / full_w

    return Photo(pixels=pixels, scale=pixels.shape[1] / full_w, size=(full_w, full_h),
                 frame=frame, frames=frames,
                 finer=finer if factor > floor or pixels is not decoded else None)


def _cv_decode(data: np.ndarray, factor: int, orientation: int) -> np.ndarray:
    pixels = cv2.imdecode(data, _CV_FLAGS[factor] | cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None:
        raise MediaError("truncated or damaged image (the JPEG decoder gave up)")
    return _upright(pixels, orientation)


def _refuse_if_too_large(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_DECODE_PIXELS:
        raise MediaError(f"image too large to decode: {width} x {height} is {width * height / 1e6:.0f} "
                         f"million pixels, the limit is {MAX_DECODE_PIXELS / 1e6:.0f} million "
                         "(about 1 GB of memory)")


def _reduced_array(image: Image.Image, max_pixels: float) -> np.ndarray:
    """The image shrunk to about ``max_pixels``: resized before conversion, which is cheaper."""
    levels = _levels(image)
    if image.mode not in _RESIZABLE_MODES:  # palette, 1-bit: nearest only; 16-bit: not at all
        image = image.convert("I" if image.mode in _LEVEL_MODES else "RGBA")
    shrink = (image.width * image.height / max_pixels) ** 0.5
    size = (round(image.width / shrink), round(image.height / shrink))
    small = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(_to_rgb(small, levels))


def _to_array(image: Image.Image) -> np.ndarray:
    """RGB pixels, converted a strip at a time: np.asarray would briefly hold two more full
    copies, and a converted image one more."""
    levels = _levels(image)
    pixels = np.empty((image.height, image.width, 3), np.uint8)
    rows = max(1, _STRIP_PIXELS // max(1, image.width))
    for top in range(0, image.height, rows):
        strip = image.crop((0, top, image.width, min(image.height, top + rows)))
        pixels[top:top + strip.height] = np.asarray(_to_rgb(strip, levels))
    return pixels


def _orientation(image: Image.Image) -> int:
    """EXIF orientation tag, or 1 when missing or unreadable (a corrupt EXIF keeps the photo)."""
    try:
        value = image.getexif().get(0x0112, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - any EXIF parse failure just means "no rotation"
        return 1


def _levels(image: Image.Image) -> tuple[float, float] | None:
    """(gain, offset) mapping a 16-bit, 32-bit or float image's values to 0-255, else None."""
    if image.mode not in _LEVEL_MODES:
        return None
    low, high = (float(v) for v in image.getextrema())
    if image.mode == "F":
        low, high = (0.0, 0.0) if not np.isfinite([low, high]).all() else (low, high)
        return 255.0 / ((high - low) or 1.0), -low
    return 255.0 / (65535.0 if high > 255 else 255.0), 0.0


def _to_rgb(image: Image.Image, levels: tuple[float, float] | None = None) -> Image.Image:
    if image.mode in _LEVEL_MODES:
        gain, offset = levels or _levels(image)
        values = (np.nan_to_num(np.asarray(image, np.float64)) + offset) * gain
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def montage(chips: list[bytes], grid: int, size: int = 150) -> Image.Image:
    """A sheet of face chips (JPEG bytes), ``grid`` columns at most."""
    columns = min(grid, max(1, len(chips)))
    rows = max(1, -(-len(chips) // columns))
    sheet = Image.new("RGB", (columns * size, rows * size), (255, 255, 255))
    for i, data in enumerate(chips):
        chip = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size))
        sheet.paste(chip, ((i % columns) * size, (i // columns) * size))
    return sheet
