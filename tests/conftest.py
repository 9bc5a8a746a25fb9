"""Shared pytest helpers and fixtures."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

FACE_RECOGNITION_SDIST = "face_recognition==1.3.0"


def fetch_face_photos(target: Path) -> list[Path]:
    """Download the face_recognition 1.3.0 sdist with pip and extract its real test photos.

    Parameters
    ----------
    target : Path
        Empty directory for the download and the photos.

    Returns
    -------
    list of Path
        The JPEG/PNG files of the sdist's ``tests/test_images`` (Obama, Biden, ...).
    """
    subprocess.run([sys.executable, "-m", "pip", "download", FACE_RECOGNITION_SDIST, "--no-deps",
                    "--no-binary", ":all:", "--dest", str(target), "--quiet"],
                   check=True, capture_output=True, timeout=300)
    (sdist,) = target.glob("face_recognition-*.tar.gz")
    photos = []
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if member.isfile() and "/tests/test_images/" in member.name \
                    and member.name.endswith((".jpg", ".png")):
                photo = target / Path(member.name).name
                photo.write_bytes(tar.extractfile(member).read())
                photos.append(photo)
    return sorted(photos)


@pytest.fixture(scope="session")
def face_photos(tmp_path_factory) -> list[Path]:
    """Real face photos (see :func:`fetch_face_photos`); skips the test when offline."""
    try:
        return fetch_face_photos(tmp_path_factory.mktemp("face_recognition_sdist"))
    except (subprocess.SubprocessError, OSError, ValueError) as error:
        pytest.skip(f"could not download {FACE_RECOGNITION_SDIST}: {error}")
