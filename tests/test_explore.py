"""Look-alike search, compare, find, the embedding map and the similarity graph, on real faces.

The store holds three sample photos (obama2, obama3, biden); obama.jpg is the query. A second
store holds only Obama, so Biden is a stranger to it; with the development sets, five_celebrity's
training photos are the store, its validation photos the members and a Jurassic Park actor the
stranger. The browser tests load the pages in headless Chromium and read the markers their
scripts set only after a successful render.
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
from hypothesis import given, settings
from hypothesis import strategies as st
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


def test_between_pairs_are_different_people_or_faces_of_one_photo():
    X = np.array([[0.0], [0.1], [1.0], [3.0], [7.0]])
    # a, a: one person; b; an unknown face in b's photo; an unknown face alone (in no pair)
    between, in_photo = sim.between_pairs(X, ["a", "a", "b", None, None], shots=[0, 1, 2, 2, 3])
    assert between.tolist() == pytest.approx([0.9, 1.0, 2.0]) and in_photo == 1
    # two faces of one photo are different people even when the clustering says otherwise
    between, in_photo = sim.between_pairs(X[:2], ["a", "a"], shots=[5, 5])
    assert between.tolist() == pytest.approx([0.1]) and in_photo == 1
    assert len(sim.between_pairs(X, ["a"] * 5)[0]) == 0


def test_the_threshold_accepts_at_most_1_in_1000_different_person_pairs():
    between = np.random.default_rng(0).normal(0.75, 0.08, 50_000)
    threshold = sim.threshold_at_rate(between)
    accepted = int((between <= threshold).sum())
    assert accepted / len(between) < 1e-3 and sim.false_accept_bound(accepted, len(between)) <= 1e-3
    assert 0.45 < threshold < 0.55  # near the 1/1000 quantile of N(0.75, 0.08): 0.503
    assert sim.pairs_needed() == 2995
    assert sim.threshold_at_rate(between[:2994]) is None
    assert sim.threshold_at_rate(between[:2995]) < between[:2995].min()


def test_with_too_few_pairs_the_threshold_is_below_the_closest_and_the_weaker_rate_is_stated():
    X = np.array([[0.0], [0.05], [0.5], [0.55], [3.0]])
    close = sim.calibrate(X, ["a", "a", "b", "b", "c"], "dlib_resnet_v1")
    assert close.source == "store" and close.value == 0.4499 and close.accepted == 0
    assert close.pairs == 8 and close.false_accept == pytest.approx(1 - 0.05 ** (1 / 8))
    assert "at most 31% of different-person pairs" in close.note and "2,995 are needed" in close.note
    far = sim.calibrate(X * 3, ["a", "a", "b", "b", "c"], "dlib_resnet_v1")
    assert far.value == 0.6 and far.accepted == 0  # never above dlib's 0.6


def test_without_pairs_it_is_dlibs_0_6_and_the_rate_is_unknown():
    X = np.random.default_rng(0).normal(size=(4, 128))
    threshold = sim.calibrate(X, ["a", "a", None, None], "dlib_resnet_v1", what="s.db")
    assert (threshold.value, threshold.source, threshold.false_accept) == (0.6, "published", None)
    assert "unknown: s.db has no pairs" in threshold.note


def test_a_given_threshold_gets_its_rate_measured():
    X = np.array([[0.0], [0.4], [0.8], [1.2]])
    threshold = sim.calibrate(X, ["a", "b", "c", "d"], "dlib_resnet_v1", given=0.5)
    assert (threshold.value, threshold.source, threshold.accepted, threshold.pairs) == (0.5, "given", 3, 6)
    assert "3 of 6 pairs" in threshold.note and threshold.false_accept > 0.5


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12_000),
       rates=st.lists(st.floats(1e-4, 0.05), min_size=2, max_size=2))
def test_the_threshold_keeps_its_rate_and_grows_with_it(seed, n, rates):
    rng = np.random.default_rng(seed)
    between = np.sort(rng.normal(rng.uniform(0.3, 1.0), rng.uniform(0.01, 0.2), n))
    low, high = sorted(rates)
    strict, loose = sim.threshold_at_rate(between, low), sim.threshold_at_rate(between, high)
    for rate, threshold in ((low, strict), (high, loose)):
        if n < sim.pairs_needed(rate):
            assert threshold is None
        elif n > sim.pairs_needed(rate):
            accepted = int(np.searchsorted(between, threshold, side="right"))
            assert sim.false_accept_bound(accepted, n) <= rate
    if strict is not None:
        assert loose is not None and strict <= loose


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
    assert found["threshold"]["source"] == "published"  # no pairs of different people
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
    assert same["threshold"]["false_accept"] is None
    text = cli("compare", sample_folder / "obama.jpg", sample_folder / "biden.jpg").output
    assert "no match" in text and "false-accept rate here is unknown" in text


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
    compared = cli("compare", sample_folder / "obama.jpg", pair)
    assert compared.exit_code == 2 and "--face-b 1:" in compared.output and "--face-b N" in compared.output


def test_find_links_every_photo_of_the_matching_person(store, sample_folder, tmp_path):
    found = cli_json("find", sample_folder / "obama.jpg", "--db", store, "-o", tmp_path / "me")
    assert sorted(p.name for p in (tmp_path / "me").iterdir()) == ["obama2.jpg", "obama3.jpg"]
    assert found["added"] == 2
    assert cli_json("find", sample_folder / "obama.jpg", "--db", store, "-o", tmp_path / "me")["added"] == 0


@pytest.fixture(scope="module")
def obama_store(sample_folder, tmp_path_factory):
    """A clustered store of Obama only: Biden is a stranger to it."""
    folder = tmp_path_factory.mktemp("obama_photos")
    for name in ("obama2.jpg", "obama3.jpg"):
        shutil.copy(sample_folder / name, folder / name)
    db = tmp_path_factory.mktemp("obama_store") / "faces.db"
    scan(folder, db, workers=1, quiet=True)
    api.cluster(db)
    return db


def test_find_on_a_stranger_adds_nothing_and_says_no_match(obama_store, sample_folder, tmp_path):
    out = tmp_path / "biden"
    found = cli_json("find", sample_folder / "biden.jpg", "--db", obama_store, "-o", out)
    assert not found["match"] and found["person"] is None and found["matched_face"] is None
    assert found["added"] == 0 and found["photos"] == [] and not out.exists()
    assert found["nearest_face"]["l2"] > found["threshold"]["value"] and found["searched"] == 2
    text = cli("find", sample_folder / "biden.jpg", "--db", obama_store, "-o", out)
    assert text.exit_code == 0 and "No match" in text.output and "Nothing added" in text.output
    assert "false-accept rate" in text.output and not out.exists()
    member = cli_json("find", sample_folder / "obama.jpg", "--db", obama_store, "-o", out)
    assert member["match"] and member["added"] == 2


def test_find_adds_unknown_faces_of_the_person_too(store, sample_folder, tmp_path):
    """Biden is one unknown face in the store (no person has him): find says so and adds his
    photo, rather than "no match" beside a face within the threshold."""
    out = tmp_path / "biden"
    found = cli_json("find", sample_folder / "biden.jpg", "--db", store, "-o", out)
    assert found["match"] and found["person"] is None and len(found["unknown_faces"]) == 1
    assert found["added"] == 1 and [Path(p).name for p in found["photos"]] == ["biden.jpg"]
    text = cli("find", sample_folder / "biden.jpg", "--db", store, "-o", tmp_path / "again")
    assert "Matches 1 unknown face (in no person yet)" in text.output and "No match" not in text.output


def stranger_setup(tmp_path):
    """A clustered store of five_celebrity's training photos (links), a member's validation
    photo and a stranger who looks like a member: a Jurassic Park actor whose nearest face,
    Elton John's, is closer than the old equal-error threshold (0.684)."""
    source, other = dataset("five_celebrity"), dataset("jurassic_park")
    folder = tmp_path / "train"
    for person in sorted(p for p in source.iterdir() if p.is_dir()):
        (folder / person.name).mkdir(parents=True)
        for photo in person.glob("train_*.jpg"):
            (folder / person.name / photo.name).symlink_to(photo)
    db = tmp_path / "faces.db"
    scan(folder, db, workers=1, quiet=True)
    api.cluster(db)
    return db, source / "elton_john" / "val_1.jpg", other / "john_hammond" / "00000005.jpg"


def test_a_look_alike_stranger_is_no_match_for_find_similar_and_compare(tmp_path):
    db, member, stranger = stranger_setup(tmp_path)
    out = tmp_path / "found"
    found = cli_json("find", stranger, "--db", db, "-o", out, "--largest")
    limit = found["threshold"]  # a search: a stranger's face against every stored face
    assert (limit["source"], limit["unit"], limit["photos"]) == ("store", "searches", 2)
    assert limit["pairs"] == 90 and limit["accepted"] == 0  # every face of a person, searched
    assert 0.03 < limit["false_accept"] < 0.04  # what 90 searches can show: stated, not 1 in 1,000
    assert not found["match"] and found["added"] == 0 and not out.exists()
    assert limit["value"] < found["nearest_face"]["l2"] < 0.684  # matched before: the issue
    text = cli("find", stranger, "--db", db, "-o", out, "--largest").output
    assert "No match" in text and "in at most 1 in 3" in text and "searches" in text

    similar = cli_json("similar", stranger, "--db", db, "--largest", "--top", 5)
    assert not any(m["same_person"] for m in similar["faces"] + similar["people"])
    member_similar = cli_json("similar", member, "--db", db, "--top", 5)
    verdict = {p["label"]: p["same_person"] for p in member_similar["people"]}
    assert any(verdict.values())  # Elton John is found
    assert all(m["same_person"] == verdict[m["label"]] for m in member_similar["faces"] if m["label"])
    nearest = found["nearest_face"]["photo"]
    compared = cli_json("compare", stranger, nearest, "--db", db, "--largest")
    pair_limit = compared["threshold"]  # two faces: the store's pairs of different people
    assert pair_limit["unit"] == "pairs" and pair_limit["pairs"] >= sim.pairs_needed()
    assert pair_limit["false_accept"] <= 1e-3 and not compared["same_person"]

    matched = cli_json("find", member, "--db", db, "-o", out)
    assert matched["match"] and matched["threshold"] == limit
    assert matched["added"] >= 10 and all("/elton_john/" in p for p in matched["photos"])


def test_a_stranger_close_to_one_photo_of_a_person_is_no_match():
    """A search compares a stranger with every stored face, so one photo of someone within
    the threshold happens far more often than the rate of a pair; a person matches only when
    two of their photos are within it, and the threshold keeps how often a stranger gets that
    (measured by searching each stored face of a person among everyone else's)."""
    a = np.array([[0.0, 0.0], [1.0, 0.0], [1.1, 0.1], [0.9, -0.1], [1.0, 0.1]])  # one photo apart
    X = np.r_[a, a + 5.0]
    labels = ["a"] * 5 + ["b"] * 5
    t = sim.calibrate_search(X, labels, "dlib_resnet_v1", photos=2)
    assert t.unit == "searches" and t.pairs == 10 and t.accepted == 0
    collection = sim.Collection(np.arange(10), X, [f"{i}.jpg" for i in range(10)], [(0, 0, 1, 1)] * 10,
                                labels, np.repeat([1, 2], 5), "clustering")
    ranked = sim.rank_identities(np.array([-0.3, 0.0]), collection, threshold=0.5)
    assert ranked[0]["label"] == "a" and ranked[0]["best_l2"] == 0.3 and ranked[0]["match_l2"] > 1
    assert not ranked[0]["same_person"]  # one photo within, not two
    ranked = sim.rank_identities(np.array([1.0, 0.05]), collection, threshold=0.5)
    assert ranked[0]["label"] == "a" and ranked[0]["same_person"]


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


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 4), min_size=1, max_size=30), st.integers(1, 3))
def test_kth_nearest_per_group_is_the_kth_smallest_of_each_group(seed, groups, k):
    groups = np.unique(groups, return_inverse=True)[1]
    D = np.random.default_rng(seed).random((3, len(groups)))
    got = sim.kth_nearest_per_group(D, groups, k)
    for g in range(groups.max() + 1):
        column = np.sort(D[:, groups == g], axis=1)
        np.testing.assert_array_equal(got[:, g], column[:, min(k, column.shape[1]) - 1])
