"""The built-in sample: real photos from a registry package, fetched with pip on first use.

The ``face_recognition==1.3.0`` source distribution on PyPI ships seven test photos (Barack
Obama five times, one partial; Joe Biden once; a 32-bit PNG). They are enough to see the whole
pipeline work on real faces without any photos of your own.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from facecluster.embed.dlib_resnet import cache_dir

SAMPLE_PACKAGE = "face_recognition==1.3.0"


def sample_photos(folder: str | Path | None = None) -> Path:
    """Folder holding the sample photos, downloading them once (cached afterwards).

    Raises
    ------
    RuntimeError
        When pip cannot fetch the package (no network to PyPI).
    """
    folder = Path(folder) if folder else cache_dir() / "sample" / "face_recognition-1.3.0"
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", SAMPLE_PACKAGE, "--no-deps",
                            "--no-binary", ":all:", "--dest", download, "--quiet"],
                           check=True, capture_output=True, text=True, timeout=600)
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise RuntimeError(f"could not download {SAMPLE_PACKAGE} from PyPI: {detail.strip()}") from None
        (sdist,) = Path(download).glob("face_recognition-*.tar.gz")
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                if (member.isfile() and "/tests/test_images/" in member.name
                        and member.name.lower().endswith((".jpg", ".png"))):
                    (folder / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return folder
