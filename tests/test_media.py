"""Decoding photos of every kind, and refusing bad files with a clear message."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from facecluster.media import MediaError, find_photos, load_photo


def gradient(width=64, height=48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    rgb = np.stack([np.tile(x, (height, 1)), np.tile(x // 2, (height, 1)),
                    np.full((height, width), 90, np.uint8)], axis=2)
    return Image.fromarray(rgb)


@pytest.mark.parametrize("name, save", [
    ("a.jpg", lambda im, p: im.save(p, "JPEG")),
    ("b.jfif", lambda im, p: im.save(p, "JPEG")),
    ("c.png", lambda im, p: im.save(p, "PNG")),
    ("d.webp", lambda im, p: im.save(p, "WEBP")),
    ("e.bmp", lambda im, p: im.save(p, "BMP")),
    ("f.tiff", lambda im, p: im.save(p, "TIFF")),
    ("g.gif", lambda im, p: im.save(p, "GIF")),
    ("h.png", lambda im, p: im.convert("L").save(p)),  # greyscale
    ("i.jpg", lambda im, p: im.convert("CMYK").save(p, "JPEG")),
    ("j.png", lambda im, p: im.convert("P").save(p)),  # palette
    ("k.png", lambda im, p: im.convert("RGBA").save(p)),
    ("l.png", lambda im, p: Image.fromarray(
        (np.asarray(im.convert("L"), np.uint16) * 257)).save(p)),  # 16-bit greyscale
])
def test_every_format_decodes_to_rgb(tmp_path, name, save):
    path = tmp_path / name
    save(gradient(), path)
    photo = load_photo(path)
    assert photo.pixels.dtype == np.uint8
    assert photo.pixels.shape == (48, 64, 3)
    assert photo.size == (64, 48) and photo.scale == 1.0
    # the left-to-right gradient survives every conversion: the image content is real
    row = photo.pixels[24, :, 0].astype(int)
    assert row[-1] - row[0] > 60


def test_heic_decodes(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "phone.heic"
    try:
        pillow_heif.from_pillow(gradient()).save(path, quality=90)
    except Exception as exc:  # encoder missing from this wheel build
        pytest.skip(f"this pillow-heif cannot encode HEIC: {exc}")
    assert load_photo(path).pixels.shape == (48, 64, 3)


def test_animated_gif_gives_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (20, 10), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    pixel = load_photo(path).pixels[5, 5]
    assert pixel[0] > 200 and pixel[2] < 50


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    gradient(64, 48).save(path, exif=exif)
    photo = load_photo(path)
    assert photo.pixels.shape == (64, 48, 3) and photo.size == (48, 64)


def test_corrupt_exif_keeps_the_photo(tmp_path):
    path = tmp_path / "bad_exif.jpg"
    buffer = io.BytesIO()
    gradient().save(buffer, "JPEG")
    data = buffer.getvalue()
    garbage = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\xff\xff" + os.urandom(40)
    app1 = b"\xff\xe1" + (len(garbage) + 2).to_bytes(2, "big") + garbage
    path.write_bytes(data[:2] + app1 + data[2:])  # right after the SOI marker
    assert load_photo(path).pixels.shape == (48, 64, 3)


def test_large_jpeg_is_decoded_reduced_with_its_scale(tmp_path):
    path = tmp_path / "big.jpg"
    gradient(4000, 3000).save(path, quality=80)
    photo = load_photo(path, max_pixels=1e6)
    height, width = photo.pixels.shape[:2]
    assert width * height <= 1.05e6 and width * height > 0.4e6
    assert photo.size == (4000, 3000)
    assert photo.scale == pytest.approx(width / 4000)


@pytest.mark.parametrize("name, content, message", [
    ("empty.jpg", b"", "empty"),
    ("notes.jpg", b"this is a text file, not a photo\n" * 20, "not an image"),
])
def test_bad_files_raise_a_clear_message(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message):
        load_photo(path)


def test_truncated_jpeg_is_reported(tmp_path):
    path = tmp_path / "cut.jpg"
    buffer = io.BytesIO()
    gradient(400, 300).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    with pytest.raises(MediaError, match="truncated|damaged"):
        load_photo(path)


def test_find_photos_walks_recursively_and_skips_hidden_and_excluded(tmp_path):
    (tmp_path / "2024" / "trip").mkdir(parents=True)
    (tmp_path / ".thumbnails").mkdir()
    (tmp_path / "out").mkdir()
    for rel in ("a.JPG", "2024/b.png", "2024/trip/c.heic", ".thumbnails/d.jpg", "out/e.jpg", "notes.txt"):
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_photos(tmp_path, exclude=[tmp_path / "out"])]
    assert found == ["2024/b.png", "2024/trip/c.heic", "a.JPG"]
