"""The fast paths of the scan: reduced JPEG decodes for detection and alignment, one decode for
formats without a reduced one, OpenCV's JPEG decoder, and the finer pass for small faces.

Speed itself is measured by ``benchmarks/speed.py``, not here: these tests check that the fast
paths give the same answers as the slow ones.
"""

from __future__ import annotations

import importlib
import io

import numpy as np
import pytest
from PIL import Image

from facecluster import media
from facecluster.detect import get_detector
from facecluster.embed import get_embedder
from facecluster.media import load_photo
from facecluster.scan import ScanOptions, find_faces

scan_module = importlib.import_module("facecluster.scan")  # the package's `scan` is the function

# Measured (docs/speed.md): chips from a decode where the face is >= 150 px wide move the
# embedding by L2 0.04-0.07 from the full-size chip's (median ~0.05 on 12 MP photos, up to ~0.1
# for an occasional face whose landmarks are unstable). For scale: shifting the detector's box by
# 2% of its width, as re-detecting a face does, moves it by 0.07 (median), and different people
# are more than 0.6 apart.
REDUCED_CHIP_L2 = 0.1


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    rgb = np.stack([np.add.outer(y, x) / 2, np.tile(x, (height, 1)), np.tile(y[:, None], (1, width))], 2)
    return Image.fromarray(rgb.astype(np.uint8))


@pytest.fixture(scope="module")
def models():
    return get_detector("hog"), get_embedder()


def full_decode_chips(monkeypatch, path, models, options):
    """The faces as the scan found them before: chips cut from a full-size decode."""
    monkeypatch.setattr(scan_module, "CHIP_SOURCE_WIDTH", float("inf"))
    faces, _ = find_faces(path, *models, options)
    monkeypatch.undo()
    return faces


@pytest.mark.parametrize("name, megapixels", [("biden.jpg", 0.2), ("obama.jpg", 0.05),
                                              ("obama2.jpg", 0.1), ("obama3.jpg", 0.15)])
def test_chips_from_a_reduced_decode_match_the_full_decode(monkeypatch, sample_folder, models,
                                                           name, megapixels):
    """Real faces, decoded at 1/2 because the detector works at a small resolution; the face is
    still >= 150 px wide in that decode, so its chip is cut there. Measured: L2 0.042, 0.073,
    0.063, 0.065; landmarks within 1% of the face's width."""
    path = sample_folder / name
    options = ScanOptions(megapixels=megapixels)
    photo = load_photo(path, max_pixels=megapixels * 1e6)
    reduced, _ = find_faces(path, *models, options)
    full = full_decode_chips(monkeypatch, path, models, options)
    assert reduced and len(reduced) == len(full)
    cut_reduced = 0
    for fast, slow in zip(reduced, full):
        width = fast.box[2] - fast.box[0]
        _, scale = photo.at_least(min(1.0, scan_module.CHIP_SOURCE_WIDTH / width))
        cut_reduced += scale < 1
        assert fast.box == slow.box
        assert np.abs(np.subtract(fast.landmarks, slow.landmarks)).max() <= 0.02 * width
        assert np.linalg.norm(np.subtract(fast.embedding, slow.embedding)) < REDUCED_CHIP_L2
    assert cut_reduced, "no face was aligned in a reduced decode: the test checks nothing"


def test_reduced_chips_of_a_12_megapixel_photo(monkeypatch, sample_folder, models, tmp_path):
    """A 12 MP JPEG: detection on its 1/2 decode shrunk to 1 MP, chips from that same 1/2
    decode; never a full decode."""
    image = Image.open(sample_folder / "biden.jpg").convert("RGB")
    scale = (12e6 / (image.width * image.height)) ** 0.5
    image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS).save(
        tmp_path / "big.jpg", quality=92)
    decodes = []
    real = media._cv_decode
    monkeypatch.setattr(media, "_cv_decode",
                        lambda data, factor, turn: decodes.append(factor) or real(data, factor, turn))
    [face], _ = find_faces(tmp_path / "big.jpg", *models, ScanOptions())
    assert decodes == [2]  # the one decode, at 1/2
    monkeypatch.undo()
    [slow] = full_decode_chips(monkeypatch, tmp_path / "big.jpg", models, ScanOptions())
    assert face.box == slow.box
    assert np.linalg.norm(np.subtract(face.embedding, slow.embedding)) < REDUCED_CHIP_L2


def test_at_least_gives_the_coarsest_decode_that_suffices(tmp_path):
    gradient(4000, 3000).save(tmp_path / "big.jpg", quality=90)
    photo = load_photo(tmp_path / "big.jpg", max_pixels=1e6)
    assert photo.pixels.shape == (866, 1155, 3) and photo.size == (4000, 3000)
    for wanted, shape in [(0.1, (1500, 2000, 3)), (0.5, (1500, 2000, 3)), (0.3, (1500, 2000, 3)),
                          (0.6, (3000, 4000, 3)), (1.0, (3000, 4000, 3))]:
        pixels, scale = photo.at_least(wanted)
        assert pixels.shape == shape and scale == shape[1] / 4000 and scale >= min(wanted, 1.0)


def test_opencv_decode_matches_pillow_and_applies_orientation(tmp_path):
    """Same pixels as Pillow's decode (both libjpeg-turbo), EXIF rotation applied, greyscale too."""
    rng = np.random.default_rng(0)
    array = (rng.random((300, 400, 3)) * 40 + np.linspace(0, 200, 400)[None, :, None]).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show upright
    Image.fromarray(array).save(tmp_path / "turned.jpg", quality=90, exif=exif)
    Image.fromarray(array[:, :, 1]).save(tmp_path / "grey.jpg", quality=90)
    for name in ("turned.jpg", "grey.jpg"):
        fast = load_photo(tmp_path / name).pixels
        with Image.open(tmp_path / name) as image:
            from PIL import ImageOps

            slow = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        assert fast.shape == slow.shape
        difference = np.abs(fast.astype(int) - slow)
        assert difference.max() <= 2 and difference.mean() < 0.1, name


def test_jpegs_opencv_must_not_decode_take_pillows_path(tmp_path):
    """Truncated and CMYK JPEGs: Pillow decodes (or refuses) them, and a finer decode for the
    aligner still works."""
    buffer = io.BytesIO()
    gradient(400, 300).save(buffer, "JPEG")
    data = buffer.getvalue()
    # an APP1 segment holding an end-of-image marker, as an EXIF thumbnail does
    thumbnail = b"Exif\x00\x00" + b"\xff\xd8" + bytes(20) + b"\xff\xd9"
    data = data[:2] + b"\xff\xe1" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail + data[2:]
    for name, cut in (("cut.jpg", data[: len(data) // 2]), ("cut_at_the_end.jpg", data[:-2])):
        (tmp_path / name).write_bytes(cut)
        with pytest.raises(media.MediaError, match="truncated|damaged"):
            load_photo(tmp_path / name)
    (tmp_path / "whole.jpg").write_bytes(data)
    with open(tmp_path / "whole.jpg", "rb") as file:  # the whole file takes OpenCV's path
        assert media._fast_jpeg(Image.open(file), file, 0) is not None
    gradient(1600, 1200).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=90)
    photo = load_photo(tmp_path / "cmyk.jpg", max_pixels=0.2e6)
    assert photo.pixels.shape[1] * photo.pixels.shape[0] <= 0.21e6
    pixels, scale = photo.at_least(1.0)
    assert pixels.shape == (1200, 1600, 3) and scale == 1.0


def test_formats_without_a_reduced_decode_are_decoded_once(tmp_path, monkeypatch):
    gradient(3000, 2000).save(tmp_path / "big.png")
    photo = load_photo(tmp_path / "big.png", max_pixels=1e6)
    assert photo.pixels.shape[0] * photo.pixels.shape[1] <= 1.05e6
    monkeypatch.setattr(media.Image, "open", lambda *a, **k: pytest.fail("decoded a second time"))
    pixels, scale = photo.at_least(1.0)
    assert pixels.shape == (2000, 3000, 3) and scale == 1.0
    assert photo.at_least(0.9)[0] is pixels


def test_finer_pass_finds_the_smaller_faces_of_a_group(tmp_path, sample_folder, models):
    """In a 12 MP photo HOG at 1 MP finds faces from ~210 px; with one such face found, the
    finer pass (MTCNN) also finds a 70 px face beside it."""
    pytest.importorskip("faceie", reason="MTCNN's weights come from the faceie package")
    canvas = Image.new("RGB", (4000, 3000), (128, 128, 128))
    big = Image.open(sample_folder / "obama.jpg").convert("RGB")
    canvas.paste(big.resize((big.width * 3 // 4, big.height * 3 // 4)), (500, 800))  # face ~250 px
    small = Image.open(sample_folder / "biden.jpg").convert("RGB")
    small = small.resize((small.width * 70 // 340, small.height * 70 // 340))  # face ~70 px
    canvas.paste(small, (2500, 1500))
    canvas.save(tmp_path / "group.jpg", quality=92)
    faces, _ = find_faces(tmp_path / "group.jpg", *models, ScanOptions())
    widths = sorted(f.box[2] - f.box[0] for f in faces)
    assert len(faces) == 2 and 50 < widths[0] < 100 and widths[1] > 200, widths
    assert sorted(f.detector for f in faces) == ["hog", "mtcnn"]  # who found each face
    [lone] = [f for f in faces if f.box[2] - f.box[0] < 100]
    assert 2500 < lone.box[0] < 2500 + small.width and 1500 < lone.box[1] < 1500 + small.height


def test_no_finer_pass_when_only_large_faces_are_found(sample_folder, models, monkeypatch):
    """Photos where HOG found only large faces cost nothing more."""
    monkeypatch.setattr(scan_module, "_small_detector", lambda: pytest.fail("finer pass ran"))
    assert len(find_faces(sample_folder / "obama3.jpg", *models, ScanOptions())[0]) == 1


def test_finer_pass_finds_a_group_of_small_faces_alone(tmp_path, sample_folder, models):
    """A 12 MP photo whose every face is below HOG's reach (~210 px at 1 MP): HOG finds
    nothing, so the finer pass looks, and finds the 80 px faces; an empty photo stays empty."""
    pytest.importorskip("faceie", reason="MTCNN's weights come from the faceie package")
    canvas = Image.new("RGB", (4000, 3000), (128, 128, 128))
    for x, name in zip((600, 1800, 3000), ("obama.jpg", "biden.jpg", "obama2.jpg")):
        face = Image.open(sample_folder / name).convert("RGB")
        shrink = 80 / (face.width / 3)  # the face is about a third of these portraits' width
        canvas.paste(face.resize((round(face.width * shrink), round(face.height * shrink))), (x, 1200))
    canvas.save(tmp_path / "group.jpg", quality=92)
    faces, _ = find_faces(tmp_path / "group.jpg", *models, ScanOptions())
    assert len(faces) == 3 and {f.detector for f in faces} == {"mtcnn"}, [f.box for f in faces]
    assert all(40 < f.box[2] - f.box[0] < 140 for f in faces)
    gradient(4000, 3000).save(tmp_path / "empty.jpg", quality=90)
    assert find_faces(tmp_path / "empty.jpg", *models, ScanOptions())[0] == []
