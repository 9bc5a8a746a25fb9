"""Look-alike search, compare, find, the embedding map and the similarity graph, on real faces.

The store holds three sample photos (obama2, obama3, biden); obama.jpg is the query. The
browser tests load the pages in headless Chromium and read the markers their scripts set only
after a successful render.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facecluster import api
from facecluster.cli import main
from facecluster.explore import similar as sim
from facecluster.explore.embedding_map import sampling_note, write_map
from facecluster.scan import scan
from conftest import dataset

STORE_PHOTOS = ("obama2.jpg", "obama3.jpg", "biden.jpg")


@pytest.fixture(scope="module")
def store(sample_folder, tmp_path_factory):
    """A clustered store of obama2, obama3 and biden (copies, so obama.jpg is not in it)."""
    folder = tmp_path_factory.mktemp("store_photos")
    for name in STORE_PHOTOS:
        shutil.copy(sample_folder / name, folder / name)
    db = tmp_path_factory.mktemp("store") / "faces.db"
    scan(folder, db, workers=1, quiet=True)
    api.cluster(db)
    return db


def cli(*args):
    """Run the command line; it must never end in a traceback."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def cli_json(*args):
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# -- the threshold ----------------------------------------------------------------------------
def test_equal_error_threshold_is_the_middle_of_a_gap_and_balances_errors():
    assert sim.equal_error_threshold(np.array([0.2, 0.3, 0.4]), np.array([0.7, 0.8])) == (0.55, 0.0)
    rng = np.random.default_rng(0)
    within, between = rng.normal(0.45, 0.08, 2000), rng.normal(0.75, 0.08, 2000)
    threshold, rate = sim.equal_error_threshold(within, between)
    assert abs(threshold - 0.60) < 0.02
    assert abs((within > threshold).mean() - (between <= threshold).mean()) < 0.01
    assert 0.02 < rate < 0.05


def test_calibrate_falls_back_to_the_published_point_with_few_pairs():
    X = np.random.default_rng(0).normal(size=(4, 128))
    threshold = sim.calibrate(X, ["a", "a", "b", None], "dlib_resnet_v1")
    assert (threshold.value, threshold.source) == (0.6, "published")
    assert "too few pairs" in threshold.note


def test_calibrate_uses_the_equal_error_point_with_enough_pairs():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 128))
    centres *= 0.45 / np.linalg.norm(centres, axis=1, keepdims=True)
    X = np.repeat(centres, 10, axis=0) + rng.normal(0, 0.02, size=(60, 128))
    threshold = sim.calibrate(X, [str(i // 10) for i in range(60)], "dlib_resnet_v1")
    assert threshold.source == "calibrated"
    assert threshold.within_pairs == 6 * 45 and threshold.between_pairs == 60 * 59 // 2 - 270
    assert threshold.equal_error_rate == 0.0


# -- similar, compare, find -------------------------------------------------------------------
def test_similar_ranks_the_query_persons_other_photos_first(store, sample_folder, tmp_path):
    montage = tmp_path / "matches.jpg"
    found = cli_json("similar", sample_folder / "obama.jpg", "--db", store, "--top", 5,
                     "--montage", montage)
    names = [p.split("/")[-1] for p in (m["photo"] for m in found["faces"])]
    assert names[:2] in (["obama2.jpg", "obama3.jpg"], ["obama3.jpg", "obama2.jpg"])
    assert names[2] == "biden.jpg"
    assert [m["same_person"] for m in found["faces"]] == [True, True, False]
    assert found["faces"][0]["l2"] <= found["faces"][1]["l2"] < found["faces"][2]["l2"]
    assert 0 < found["faces"][0]["cosine"] < found["faces"][2]["cosine"]
    assert found["threshold"]["source"] == "published"  # three faces are too few to calibrate
    assert found["people"][0]["label"] == found["faces"][0]["label"]
    with Image.open(montage) as image:
        assert image.width == 4 * 150  # the query and three matches


def test_similar_in_a_gallery_returns_that_identitys_faces_first(tmp_path, monkeypatch):
    """A gallery of links to four photos per identity; the query is a fifth photo."""
    source = dataset("five_celebrity")
    gallery = tmp_path / "gallery"
    for person in sorted(p for p in source.iterdir() if p.is_dir()):
        (gallery / person.name).mkdir(parents=True)
        for n in range(1, 5):
            (gallery / person.name / f"{n}.jpg").symlink_to(person / f"train_{n}.jpg")
    monkeypatch.setenv("FACECLUSTER_CACHE", str(tmp_path / "cache"))
    found = cli_json("similar", source / "madonna" / "val_1.jpg", "--gallery", gallery,
                     "--top", 3, "--workers", 1)
    assert Path(found["db"]).is_file() and not (gallery / ".facecluster").exists()  # nothing in the gallery
    assert [m["label"] for m in found["faces"]] == ["madonna"] * 3
    assert found["people"][0]["label"] == "madonna"
    assert found["people"][0]["best_l2"] < found["people"][1]["best_l2"]
    assert found["people"][0]["mean_l2"] < min(p["mean_l2"] for p in found["people"][1:])


def test_compare_says_same_for_two_obamas_and_different_for_obama_and_biden(sample_folder, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)  # no faces.db here: the published threshold is used
    same = cli_json("compare", sample_folder / "obama.jpg", sample_folder / "obama2.jpg")
    different = cli_json("compare", sample_folder / "obama.jpg", sample_folder / "biden.jpg")
    assert same["same_person"] and not different["same_person"]
    assert same["l2"] < 0.5 < 0.7 < different["l2"]
    assert same["threshold"]["source"] == "published" and same["threshold"]["value"] == 0.6
    text = cli("compare", sample_folder / "obama.jpg", sample_folder / "biden.jpg").output
    assert "different people" in text and "published" in text


def test_a_photo_with_several_faces_needs_face_or_largest(sample_folder, tmp_path, store):
    pair = tmp_path / "pair.jpg"
    left, right = (Image.open(sample_folder / n).convert("RGB") for n in ("obama2.jpg", "biden.jpg"))
    left = left.resize((600, 600 * left.height // left.width))
    right = right.resize((400, 400 * right.height // right.width))
    sheet = Image.new("RGB", (1000, max(left.height, right.height)), "white")
    sheet.paste(left, (0, 0))
    sheet.paste(right, (600, 0))
    sheet.save(pair)
    ambiguous = cli("similar", pair, "--db", store)
    assert ambiguous.exit_code == 2
    assert all(word in ambiguous.output for word in ("--face 1", "--face 2", "--largest"))
    assert cli("similar", pair, "--db", store, "--face", 3).exit_code == 2
    largest = cli_json("similar", pair, "--db", store, "--largest")
    assert largest["query"]["faces"] == 2 and largest["faces"][0]["photo"].endswith("obama2.jpg")


def test_find_links_every_photo_of_the_matching_person(store, sample_folder, tmp_path):
    found = cli_json("find", sample_folder / "obama.jpg", "--db", store, "-o", tmp_path / "me")
    assert sorted(p.name for p in (tmp_path / "me").iterdir()) == ["obama2.jpg", "obama3.jpg"]
    assert found["added"] == 2
    assert cli_json("find", sample_folder / "obama.jpg", "--db", store, "-o", tmp_path / "me")["added"] == 0


def test_bad_input_gets_a_message_not_a_traceback(sample_folder, tmp_path):
    missing = cli("similar", sample_folder / "obama.jpg", "--db", tmp_path / "none.db")
    assert missing.exit_code == 2 and "no store at" in missing.output
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (200, 200), "grey").save(blank)
    no_face = cli("compare", blank, sample_folder / "obama.jpg")
    assert no_face.exit_code == 1 and "no face found" in no_face.output


# -- map and graph ----------------------------------------------------------------------------
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium binary on PATH (apt-get install chromium) to load the HTML pages in")


def rendered_dom(page, tmp_path) -> str:
    """The page's DOM after its scripts ran in headless Chromium (no network, fresh profile)."""
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def body_data(dom: str) -> dict:
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', body))


def assert_self_contained(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text


def test_map_page_renders_with_thumbnails(store, tmp_path):
    summary = cli_json("map", "--db", store, "-o", tmp_path / "map.html", "--method", "tsne")
    page = tmp_path / "map.html"
    assert summary["shown"] == summary["total"] == 3 and (tmp_path / "map.png").stat().st_size > 10_000
    assert_self_contained(page)
    dom = rendered_dom(page, tmp_path)
    data = body_data(dom)
    assert "error" not in data, data["error"]
    assert data["rendered"] == "ok" and data["points"] == "3" and data["thumbs-drawn"] == "3"
    assert dom.count('src="data:image/jpeg;base64,') == 3


def test_map_states_the_sample(store, tmp_path):
    summary = write_map(store, tmp_path / "map.html", "pca", limit=2)
    assert summary["shown"] == 2 and "random sample of 2 of the 3 faces (seed 0)" in summary["note"]
    assert "random sample of 2 of the 3 faces" in (tmp_path / "map.html").read_text()
    assert sampling_note(3, 3, 0) == "all 3 faces"


def test_umap_without_umap_learn_says_how_to_get_it(store, tmp_path):
    pytest.importorskip("sklearn")
    try:
        import umap  # noqa: F401

        pytest.skip("umap-learn is installed")
    except ImportError:
        pass
    result = cli("map", "--db", store, "-o", tmp_path / "map.html", "--method", "umap")
    assert result.exit_code == 1 and "pip install umap-learn" in result.output


def test_graph_page_renders_faces_on_nodes(store, tmp_path):
    summary = cli_json("graph", "--db", store, "-o", tmp_path / "graph.html")
    assert summary["nodes"] == 3 and summary["edges"] == 1  # only the two Obamas are close
    graph = nx.read_graphml(tmp_path / "graph.graphml")
    assert graph.number_of_nodes() == 3 and graph.number_of_edges() == 1
    (a, b, distance), = graph.edges(data="distance")
    assert {graph.nodes[a]["photo"].split("/")[-1], graph.nodes[b]["photo"].split("/")[-1]} == \
        {"obama2.jpg", "obama3.jpg"} and distance < summary["threshold"]["value"]
    assert (tmp_path / "graph.png").stat().st_size > 10_000
    assert_self_contained(tmp_path / "graph.html")
    dom = rendered_dom(tmp_path / "graph.html", tmp_path)
    data = body_data(dom)
    assert "error" not in data, data["error"]
    assert (data["rendered"], data["nodes"], data["edges"]) == ("ok", "3", "1")
    assert dom.count("<image ") == 3 and dom.count('href="data:image/jpeg;base64,') == 3


def test_people_graph_has_one_node_per_person(store, tmp_path):
    summary = cli_json("graph", "--db", store, "-o", tmp_path / "people.html", "--people")
    people = {label for label in sim.load_store(store, "dlib_resnet_v1").labels if label}
    assert summary["nodes"] == len(people) >= 1
