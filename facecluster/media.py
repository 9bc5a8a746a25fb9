"""Find photos and decode them into RGB arrays, whatever their format or quirks.

Decoding never raises for a bad file: :func:`load_photo` raises :class:`MediaError` with a
message a user can act on, and the scan records it and goes on.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

try:  # HEIC/HEIF support is optional at import time but installed by default.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover
    pillow_heif = None

Image.MAX_IMAGE_PIXELS = 400_000_000  # large panoramas are photos too, not decompression bombs

PHOTO_EXTENSIONS = frozenset(
    ".jpg .jpeg .jfif .jpe .png .webp .bmp .tif .tiff .gif .heic .heif".split()
)


class MediaError(Exception):
    """A file that cannot be read as a photo; the message says why."""


@dataclass
class Photo:
    """A decoded photo.

    ``pixels`` is an RGB uint8 array, possibly reduced for speed; ``scale`` maps its
    coordinates back to the full-resolution, orientation-corrected photo
    (``full = reduced / scale``). ``size`` is the full (width, height).
    """

    pixels: np.ndarray
    scale: float
    size: tuple[int, int]


def find_photos(root: str | os.PathLike, exclude: list[Path] | None = None) -> list[Path]:
    """Every photo below ``root`` (or ``root`` itself if it is a file), sorted.

    Hidden folders and the folders in ``exclude`` (e.g. the output folder) are skipped.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    excluded = {p.resolve() for p in exclude or []}
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(
            d for d in subfolders
            if not d.startswith(".") and (Path(folder) / d).resolve() not in excluded
        )
        found += [Path(folder) / f for f in files
                  if Path(f).suffix.lower() in PHOTO_EXTENSIONS and not f.startswith(".")]
    return sorted(found)


def media_path(path: Path) -> str:
    """The name a file is stored under: its resolved path (the link's own path if broken)."""
    return str(path.resolve()) if path.exists() else str(path.absolute())


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes: recognises a photo after a move or a rename."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_photo(path: str | os.PathLike, max_pixels: float | None = None) -> Photo:
    """Decode a photo as RGB with its EXIF orientation applied.

    Parameters
    ----------
    path : path-like
        The photo file.
    max_pixels : float, optional
        Decode at reduced size when the photo has more pixels than this. JPEGs use
        the decoder's draft mode (much faster than decoding fully and shrinking).

    Raises
    ------
    MediaError
        For an empty, truncated, unreadable or non-image file.

    Examples
    --------
    >>> photo = load_photo("holiday.jpg", max_pixels=2e6)  # doctest: +SKIP
    >>> photo.pixels.shape, photo.scale
    ((1224, 1632, 3), 0.4)
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise MediaError("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                return _decode(image, max_pixels)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(f"image too large: {exc}") from None
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


def _decode(image: Image.Image, max_pixels: float | None) -> Photo:
    orientation = _orientation(image)
    full_w, full_h = image.size
    if orientation in (5, 6, 7, 8):
        full_w, full_h = full_h, full_w
    if max_pixels and image.format == "JPEG" and full_w * full_h > max_pixels:
        shrink = (full_w * full_h / max_pixels) ** 0.5
        image.draft("RGB", (int(image.size[0] / shrink), int(image.size[1] / shrink)))
    image.seek(0)  # first frame of an animated GIF/WebP
    image.load()  # raises here for truncated data
    if orientation > 1:
        image = ImageOps.exif_transpose(image) or image
    image = _to_rgb(image)
    if max_pixels and image.width * image.height > max_pixels * 1.05:
        shrink = (image.width * image.height / max_pixels) ** 0.5
        image = image.resize((round(image.width / shrink), round(image.height / shrink)),
                             Image.Resampling.BILINEAR, reducing_gap=2.0)
    return Photo(pixels=np.asarray(image), scale=image.width / full_w, size=(full_w, full_h))


def _orientation(image: Image.Image) -> int:
    """EXIF orientation tag, or 1 when missing or unreadable (a corrupt EXIF keeps the photo)."""
    try:
        value = image.getexif().get(0x0112, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - any EXIF parse failure just means "no rotation"
        return 1


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size else 1.0
        array = array / (65535.0 if peak > 255 else 255.0) * 255.0
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        span = float(array.max() - array.min()) or 1.0
        return Image.fromarray(((array - array.min()) / span * 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
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
