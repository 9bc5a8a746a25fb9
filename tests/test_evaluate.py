"""`facecluster evaluate` on labelled folders made from real photos."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from conftest import dataset
from facecluster.cli import main


def labelled_set(root, sample_folder):
    for identity, names in {"obama": ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg"],
                            "biden": ["biden.jpg"], "_group": ["obama_partial_face2.jpg"]}.items():
        (root / identity).mkdir(parents=True)
        for name in names:
            shutil.copy(sample_folder / name, root / identity / name)
    (root / "obama" / "broken.jpg").write_bytes(b"")
    return root


def evaluate(*args) -> dict:
    result = CliRunner().invoke(main, ["evaluate", *map(str, args), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_evaluate_reports_detection_embedding_and_clustering(tmp_path, sample_folder):
    root = labelled_set(tmp_path / "set", sample_folder)
    report = evaluate(root, "--compare", "--db", tmp_path / "e.db")
    detection = report["detection"]
    # _group is skipped; the empty file is an unreadable photo without a face
    assert detection["photos"] == 6 and detection["scored_faces"] == 5 and detection["identities"] == 2
    assert detection["photos_without_face"] == 1 and detection["unreadable"] == 1
    assert report["embedding"]["roc_auc"] == 1.0  # Obama vs Biden is easy for dlib
    methods = [row["method"] for row in report["clustering"]]
    assert methods[0].startswith("graph") and any("oracle" in m for m in methods) and len(methods) == 5
    default = report["clustering"][0]
    assert default["n_clusters"] == 1 and default["bcubed_f"] == 1.0  # Obama together, Biden alone
    assert "noise" in report["note"]


def test_labelled_boxes_choose_the_scored_face(tmp_path, sample_folder):
    root = labelled_set(tmp_path / "set", sample_folder)
    # label Biden's face by box in a photo filed under obama: the box, not the folder, decides
    shutil.copy(sample_folder / "biden.jpg", root / "obama" / "not_obama.jpg")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,identity,xmin,ymin,xmax,ymax\nobama/not_obama.jpg,biden,446,235,760,550\n")
    report = evaluate(root, "--boxes", boxes, "--db", tmp_path / "e.db")
    assert report["detection"]["scored_faces"] == 6
    assert report["clustering"][0]["bcubed_f"] == 1.0  # both Biden photos scored as biden


def test_sweep_writes_a_plot(tmp_path, sample_folder):
    root = labelled_set(tmp_path / "set", sample_folder)
    report = evaluate(root, "--algorithm", "chinese-whispers", "--sweep", "threshold", "--values", "0.2,0.5,0.9",
                      "--plot", tmp_path / "sweep.png", "--db", tmp_path / "e.db")
    assert [row["threshold"] for row in report["sweep"]] == [0.2, 0.5, 0.9]
    assert report["sweep"][-1]["n_clusters"] == 1 and (tmp_path / "sweep.png").stat().st_size > 1000
    bad = CliRunner().invoke(main, ["evaluate", str(root), "--sweep", "threshold", "--db", str(tmp_path / "e.db")])
    assert bad.exit_code != 0 and "graph has no parameter 'threshold'" in bad.output


def test_default_beats_the_seed_recipes_on_jurassic_park(tmp_path):
    report = evaluate(dataset("jurassic_park"), "--compare", "--db", tmp_path / "e.db")
    default, *seeds, oracle = report["clustering"]
    assert default["bcubed_f"] >= 0.90
    assert all(default["bcubed_f"] > seed["bcubed_f"] for seed in seeds)
