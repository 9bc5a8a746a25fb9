"""Shared pytest fixtures: real faces from a registry package, the development sets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from facecluster.sample import sample_photos

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def sample_folder(tmp_path_factory) -> Path:
    """The face_recognition 1.3.0 test photos (Obama x5, Biden, a 32-bit PNG)."""
    try:
        return sample_photos(tmp_path_factory.mktemp("sample"))
    except RuntimeError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def face_photos(sample_folder) -> list[Path]:
    return sorted(sample_folder.iterdir())


def dataset(name: str) -> Path:
    """A development set from ../shared/datasets; skips the test when it is absent."""
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"development set {name} not available at {path}")
    return path


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs; skips where mounting is not allowed (the RLIMIT_FSIZE test covers that)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
            check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
