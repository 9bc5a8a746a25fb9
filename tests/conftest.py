"""Shared pytest fixtures: real faces from a registry package, the development sets."""

from __future__ import annotations

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
