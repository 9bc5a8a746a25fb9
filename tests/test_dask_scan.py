"""`facecluster scan --dask`: detection and embedding on the worker processes of a real Dask
cluster (a LocalCluster), the store written by the client alone, as a local scan writes it."""

from __future__ import annotations

import importlib
import json
import socket
import sqlite3
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from facecluster.cli import main
from facecluster.scan import DaskError, scan

distributed = pytest.importorskip("distributed")
scan_module = importlib.import_module("facecluster.scan")  # the package's `scan` is the function


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread each, as `dask worker ADDRESS --nworkers 2 --nthreads 1`."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local:
        yield local


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def stored_faces(db) -> dict[str, list[tuple]]:
    """path -> [(box, detector, score, landmarks, embedding)], in box order."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT m.path, f.left, f.top, f.right, f.bottom, f.detector, f.score, "
                           "f.landmarks, f.embedding FROM faces f JOIN media m ON m.id = f.media_id "
                           "ORDER BY m.path, f.left, f.top").fetchall()
    faces: dict[str, list[tuple]] = {}
    for path, *box, detector, score, landmarks, embedding in rows:
        faces.setdefault(path, []).append((tuple(box), detector, score, json.loads(landmarks),
                                           np.frombuffer(embedding, np.float32)))
    return faces


def test_dask_scan_stores_the_faces_of_a_local_scan_and_resumes(tmp_path, sample_folder, cluster):
    result = invoke("scan", sample_folder, "--db", tmp_path / "dask.db", "--json",
                    "--dask", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    on_dask = json.loads(result.stdout)
    local = scan(sample_folder, tmp_path / "local.db", workers=1, quiet=True)
    assert on_dask["scanned"] == on_dask["photos"] == local.photos == 7
    assert on_dask["faces"] == local.faces == 7 and on_dask["errors"] == local.errors == []
    assert (on_dask["downscaled"], on_dask["smallest_face"]) == (local.downscaled, local.smallest_face)

    dask_faces, local_faces = stored_faces(tmp_path / "dask.db"), stored_faces(tmp_path / "local.db")
    assert dask_faces.keys() == local_faces.keys() and len(dask_faces) == 7
    for path, faces in local_faces.items():
        assert len(dask_faces[path]) == len(faces)
        for (box, detector, score, landmarks, vector), (box2, detector2, score2, landmarks2, vector2) \
                in zip(faces, dask_faces[path]):
            assert (box, detector) == (box2, detector2)
            assert score == pytest.approx(score2, abs=1e-6)
            np.testing.assert_allclose(landmarks, landmarks2, atol=1e-6)
            np.testing.assert_allclose(vector, vector2, atol=1e-5)

    again = invoke("scan", sample_folder, "--db", tmp_path / "dask.db", "--json",
                   "--dask", cluster.scheduler_address)
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["scanned"], report["unchanged"], report["faces"]) == (0, 7, 0)  # nothing re-read


def test_run_finds_the_faces_on_the_cluster(tmp_path, sample_folder, cluster):
    """`facecluster.run(..., dask=)` and `run --dask`: the scan runs on the cluster (its run
    record names the scheduler), then clusters and exports here."""
    import facecluster

    with distributed.Client(cluster, set_as_default=False) as client:
        scanned, clustered, exported = facecluster.run(sample_folder, tmp_path / "api", quiet=True, dask=client)
    assert scanned.faces == 7 and clustered.faces == 7 and (tmp_path / "api" / "people.json").exists()
    result = invoke("run", sample_folder, "-o", tmp_path / "cli", "--json", "--dask", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scan"]["faces"] == 7
    for db in (tmp_path / "api" / "faces.db", tmp_path / "cli" / "faces.db"):
        with sqlite3.connect(db) as con:
            params = [json.loads(p) for (p,) in con.execute("SELECT params FROM runs WHERE command = 'scan'")]
        assert params[0]["dask"] == cluster.scheduler_address


def test_an_interrupted_dask_scan_keeps_every_finished_photo(tmp_path, sample_folder, cluster,
                                                           monkeypatch):
    saved = []
    save_media = scan_module.Store.save_media

    def save_then_stop(store, *args, **kwargs):
        if len(saved) == 3:
            raise KeyboardInterrupt  # the client killed after three photos came back
        saved.append(kwargs.get("faces"))
        return save_media(store, *args, **kwargs)

    db = tmp_path / "faces.db"
    with distributed.Client(cluster, set_as_default=False) as client:
        monkeypatch.setattr(scan_module.Store, "save_media", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            scan(sample_folder, db, quiet=True, dask=client)
        monkeypatch.setattr(scan_module.Store, "save_media", save_media)
        report = scan(sample_folder, db, quiet=True, dask=client)  # a Client, used as it is
    assert (report.unchanged, report.scanned, report.faces) == (3, 4, 4)
    assert sum(map(len, stored_faces(db).values())) == 7


def test_cluster_problems_are_one_sentence_and_write_nothing(tmp_path, sample_folder, cluster,
                                                              monkeypatch):
    db = tmp_path / "faces.db"
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        closed = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    result = invoke("scan", sample_folder, "--db", db, "--dask", closed)
    assert result.exit_code == 1
    assert result.output == (f"Error: cannot reach a Dask scheduler at {closed}: start one there "
                             "with `dask scheduler` and check the address and port (see docs/dask.md)\n")

    result = invoke("run", sample_folder, "-o", tmp_path / "people", "--dask", "no-port")
    assert result.exit_code == 1
    assert result.output == "Error: 'no-port' is not a Dask scheduler address: give tcp://HOST:8786\n"

    result = invoke("scan", sample_folder, "--db", db, "--dask", closed, "--workers", "2")
    assert result.exit_code == 2 and "--workers does not apply with --dask" in result.output

    monkeypatch.setattr(scan_module, "installed_version", lambda: "0.0.0-other")
    result = invoke("scan", sample_folder, "--db", db, "--dask", cluster.scheduler_address)
    assert result.exit_code == 1
    assert result.output.startswith("Error: the Dask worker at tcp://")
    assert ("and this machine 0.0.0-other: install the same version on the scheduler and every "
            "worker, and restart them (see docs/dask.md)\n") in result.output
    monkeypatch.undo()

    monkeypatch.setitem(sys.modules, "distributed", None)  # not installed
    result = invoke("scan", sample_folder, "--db", db, "--dask", cluster.scheduler_address)
    assert result.exit_code == 1
    assert result.output == ("Error: scanning on a Dask cluster needs the Dask extra: "
                             "pip install 'facecluster[dask]'\n")
    assert not db.exists() and not (tmp_path / "people").exists()


def test_a_worker_of_another_version_that_joined_later_stops_the_scan(tmp_path, sample_folder,
                                                                     cluster, monkeypatch):
    with distributed.Client(cluster, set_as_default=False) as client:
        monkeypatch.setattr(scan_module, "_check_cluster", lambda client: None)  # joined after it
        monkeypatch.setattr(scan_module, "installed_version", lambda: "0.0.0-other")
        with pytest.raises(DaskError, match=r"^the Dask worker at tcp://\S+ has facecluster \S+ and "
                                            r"this machine 0.0.0-other: install the same version"):
            scan(sample_folder, tmp_path / "faces.db", quiet=True, dask=client)
    with sqlite3.connect(tmp_path / "faces.db") as con:
        assert con.execute("SELECT count(*) FROM media").fetchone() == (0,)


def test_a_scheduler_without_workers_is_refused(tmp_path, sample_folder, monkeypatch):
    monkeypatch.setattr(scan_module, "DASK_CONNECT_TIMEOUT", 1)
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp",
                                 dashboard_address=":0") as empty:
        with pytest.raises(DaskError, match="^no Dask workers are connected to the scheduler at tcp://"):
            scan(sample_folder, tmp_path / "faces.db", dask=empty.scheduler_address)
    assert not (tmp_path / "faces.db").exists()


def test_a_worker_that_cannot_see_the_photos_stops_the_scan(tmp_path):
    """A worker that finds no photo where the client sees one is not sharing the folder; where
    the client does not see it either, the photo vanished and is stored as a local scan would."""
    client = SimpleNamespace(scheduler=SimpleNamespace(address="tcp://10.0.0.5:8786"))
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"jpeg")
    result = {"path": str(photo), "size": 4, "mtime": 0.0, "digest": None, "faces": [],
              "error": "file not found (a broken link, or removed during the scan)"}
    item = (str(photo), 4, 0.0, None)
    outcome = scan_module._NotShared("tcp://10.0.0.7:40000", result)
    with pytest.raises(DaskError, match=f"^the Dask worker at tcp://10.0.0.7:40000 cannot see {photo}: "
                                        "every worker must see the photos at the same path"):
        scan_module._dask_result((type(outcome), outcome, None), item, client)
    photo.unlink()
    assert scan_module._dask_result((type(outcome), outcome, None), item, client) == result


def test_the_scheduler_needs_facecluster_too():
    """The scheduler unpickles the tasks, so it imports facecluster: checked like a worker."""
    mine = scan_module.installed_version()
    versions = {"workers": {"tcp://10.0.0.7:40000": {"packages": {"facecluster": mine}}},
                "scheduler": {"packages": {"facecluster": None}}}
    client = SimpleNamespace(scheduler=SimpleNamespace(address="tcp://10.0.0.5:8786"),
                             wait_for_workers=lambda n, timeout: None,
                             get_versions=lambda packages=None: versions)
    with pytest.raises(DaskError, match=r"^facecluster is not installed on the Dask scheduler at "
                                        r"tcp://10.0.0.5:8786: install facecluster .* on the scheduler"):
        scan_module._check_cluster(client)
    versions["scheduler"]["packages"]["facecluster"] = mine
    scan_module._check_cluster(client)  # all the same: no complaint
