"""Tests for facecluster.evaluate.metrics against hand-computed values."""

import math

import numpy as np
import pytest

from facecluster.evaluate.metrics import (
    bcubed_prf,
    clustering_report,
    equal_error_rate,
    iou,
    match_boxes,
    noise_as_singletons,
    pair_distances,
    pairwise_prf,
    tar_at_far,
    verification_report,
)

approx = pytest.approx

# ---------------------------------------------------------------------------
# clustering quality
# ---------------------------------------------------------------------------

# Running example, items 0..4:
#   truth = a a a b b
#   pred  = 0 0 1 1 1
# Predicted pairs (same cluster):  (0,1) aa ok, (2,3) ab no, (2,4) ab no, (3,4) bb ok
#   -> 4 predicted pairs, 2 of them true.
# True pairs (same identity):      (0,1) ok, (0,2) no, (1,2) no, (3,4) ok
#   -> 4 true pairs, 2 of them predicted.
# Pairwise P = 2/4, R = 2/4, F = 1/2.
#
# BCubed per item (precision = same-identity share of own cluster,
#                  recall = own-cluster share of own identity):
#   item 0 (a, c0): P = 2/2, R = 2/3
#   item 1 (a, c0): P = 2/2, R = 2/3
#   item 2 (a, c1): P = 1/3, R = 1/3
#   item 3 (b, c1): P = 2/3, R = 2/2
#   item 4 (b, c1): P = 2/3, R = 2/2
# P = (1 + 1 + 1/3 + 2/3 + 2/3) / 5 = (11/3)/5 = 11/15
# R = (2/3 + 2/3 + 1/3 + 1 + 1) / 5 = (11/3)/5 = 11/15,  F = 11/15
TRUTH = ["a", "a", "a", "b", "b"]
PRED = [0, 0, 1, 1, 1]


def test_pairwise_running_example():
    assert pairwise_prf(TRUTH, PRED) == approx((0.5, 0.5, 0.5))


def test_bcubed_running_example():
    assert bcubed_prf(TRUTH, PRED) == approx((11 / 15, 11 / 15, 11 / 15))


def test_all_in_one_cluster():
    # truth a a b b, pred 0 0 0 0
    # pairwise: predicted pairs C(4,2) = 6, true pairs (0,1),(2,3) = 2, both = 2
    #   P = 2/6 = 1/3, R = 2/2 = 1, F = 2*(1/3)*1/(1/3+1) = 1/2
    # BCubed: each item P = 2/4 (2 of its identity in a cluster of 4), R = 2/2
    #   P = 1/2, R = 1, F = 2*(1/2)/(3/2) = 2/3
    truth, pred = list("aabb"), [0, 0, 0, 0]
    assert pairwise_prf(truth, pred) == approx((1 / 3, 1.0, 0.5))
    assert bcubed_prf(truth, pred) == approx((0.5, 1.0, 2 / 3))


def test_all_singletons():
    # truth a a b b, pred 0 1 2 3: no predicted pair -> precision 1.0 (empty case)
    # true pairs 2, both 0 -> recall 0, F 0
    # BCubed: P = 1 for every item, R = 1/2 for every item, F = 2*(1/2)/(3/2) = 2/3
    truth, pred = list("aabb"), [0, 1, 2, 3]
    assert pairwise_prf(truth, pred) == approx((1.0, 0.0, 0.0))
    assert bcubed_prf(truth, pred) == approx((1.0, 0.5, 2 / 3))


def test_no_pairs_anywhere_is_perfect():
    # every identity and every cluster a singleton: nothing to get wrong
    assert pairwise_prf(["a", "b", "c"], [0, 1, 2]) == approx((1.0, 1.0, 1.0))


def test_perfect_clustering_scores_one_everywhere():
    truth = ["x", "x", "y", "z", "z", "z"]
    pred = [7, 7, 3, 1, 1, 1]  # label values do not matter
    assert pairwise_prf(truth, pred) == approx((1.0, 1.0, 1.0))
    assert bcubed_prf(truth, pred) == approx((1.0, 1.0, 1.0))
    r = clustering_report(truth, pred)
    for key in ("pairwise_precision", "pairwise_recall", "pairwise_f",
                "bcubed_precision", "bcubed_recall", "bcubed_f", "nmi", "ari"):
        assert r[key] == approx(1.0), key


def test_noise_as_singletons_relabels_each_noise_face():
    assert noise_as_singletons([-1, 3, -1, 0]).tolist() == [4, 3, 5, 0]
    assert noise_as_singletons([-1, -1]).tolist() == [0, 1]
    assert noise_as_singletons([2, 0]).tolist() == [2, 0]
    assert noise_as_singletons([]).tolist() == []


def test_noise_faces_are_not_a_predicted_pair():
    # truth a a b, pred -1 -1 0 -> clusters {0}, {1}, {2}
    # two unknown faces of identity a are NOT a predicted pair:
    #   predicted pairs 0 -> P = 1.0; true pair (0,1) missed -> R = 0, F = 0
    # BCubed: P = 1 for all; R = 1/2, 1/2, 1 -> 2/3; F = 2*(2/3)/(5/3) = 4/5
    truth = list("aab")
    assert pairwise_prf(truth, [-1, -1, 0]) == approx((1.0, 0.0, 0.0))
    assert bcubed_prf(truth, [-1, -1, 0]) == approx((1.0, 2 / 3, 0.8))
    # the same faces put in a real shared cluster are a (true) predicted pair
    assert pairwise_prf(truth, [5, 5, 0]) == approx((1.0, 1.0, 1.0))


def test_noise_face_among_clustered_ones():
    # truth a a a, pred 0 0 -1: pairs (0,1) predicted+true; (0,2),(1,2) true only
    # pairwise P = 1/1, R = 1/3, F = 2*(1/3)/(4/3) = 1/2
    # BCubed: P = 1,1,1; R = 2/3, 2/3, 1/3 -> 5/9; F = 2*(5/9)/(14/9) = 5/7
    truth = list("aaa")
    assert pairwise_prf(truth, [0, 0, -1]) == approx((1.0, 1 / 3, 0.5))
    assert bcubed_prf(truth, [0, 0, -1]) == approx((1.0, 5 / 9, 5 / 7))


def test_clustering_report_by_hand():
    # truth a a a b b c, pred 0 0 1 1 1 -1  (face 5 unknown -> singleton cluster 2)
    # contingency: (a,0)=2 (a,1)=1 (b,1)=2 (c,2)=1
    # pairwise: both = 1+0+1+0 = 2, predicted pairs = C(2,2)+C(3,2)+0 = 4,
    #           true pairs = C(3,2)+C(2,2)+0 = 4 -> P = R = F = 1/2
    # BCubed: running example items (sum 11/3 each for P and R) + face 5 (1, 1)
    #   P = R = (11/3 + 1)/6 = 7/9
    # ARI: index = 2, sum_true = 4, sum_pred = 4, all pairs C(6,2) = 15
    #   expected = 4*4/15 = 16/15, max = (4+4)/2 = 4
    #   ARI = (2 - 16/15) / (4 - 16/15) = (14/15)/(44/15) = 7/22
    # NMI (arithmetic): both label sets have sizes {3,2,1} -> same entropy
    #   H = 1/2 ln2 + 1/3 ln3 + 1/6 ln6
    #   MI = 1/3 ln((2/6)/(3/6*2/6)) + 1/6 ln((1/6)/(3/6*3/6))
    #      + 1/3 ln((2/6)/(2/6*3/6)) + 1/6 ln((1/6)/(1/6*1/6))
    #      = 1/3 ln2 + 1/6 ln(2/3) + 1/3 ln2 + 1/6 ln6;  NMI = MI / H
    ln = math.log
    h = ln(2) / 2 + ln(3) / 3 + ln(6) / 6
    mi = ln(2) / 3 + ln(2 / 3) / 6 + ln(2) / 3 + ln(6) / 6
    r = clustering_report(list("aaabbc"), [0, 0, 1, 1, 1, -1])
    assert r["n_faces"] == 6
    assert r["n_identities"] == 3
    assert r["n_clusters"] == 2
    assert r["unknown_share"] == approx(1 / 6)
    assert (r["pairwise_precision"], r["pairwise_recall"], r["pairwise_f"]) == approx(
        (0.5, 0.5, 0.5))
    assert (r["bcubed_precision"], r["bcubed_recall"], r["bcubed_f"]) == approx(
        (7 / 9, 7 / 9, 7 / 9))
    assert r["ari"] == approx(7 / 22)
    assert r["nmi"] == approx(mi / h)


def test_truth_labels_any_hashable_and_numpy_pred():
    truth = [("id", 1), ("id", 1), 42, 42, "x"]
    pred = np.array([3, 3, 8, 8, -1])
    assert pairwise_prf(truth, pred) == approx((1.0, 1.0, 1.0))
    assert bcubed_prf(truth, pred) == approx((1.0, 1.0, 1.0))


def test_bad_input_rejected():
    with pytest.raises(ValueError):
        pairwise_prf(["a", "b"], [0])
    with pytest.raises(ValueError):
        bcubed_prf([], [])
    with pytest.raises(ValueError):
        pairwise_prf(["a", "b"], [0.5, 1.0])


def test_pairwise_matches_brute_force_on_random_labels():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 6, size=60)
    pred = rng.integers(-1, 5, size=60)
    p = noise_as_singletons(pred)
    i, j = np.triu_indices(60, k=1)
    same_t, same_p = truth[i] == truth[j], p[i] == p[j]
    both = np.sum(same_t & same_p)
    assert pairwise_prf(truth, pred)[:2] == approx(
        (both / same_p.sum(), both / same_t.sum()))
    # BCubed brute force, item by item
    prec = [np.mean(truth[p == p[k]] == truth[k]) for k in range(60)]
    rec = [np.mean(p[truth == truth[k]] == p[k]) for k in range(60)]
    assert bcubed_prf(truth, pred)[:2] == approx((np.mean(prec), np.mean(rec)))


# ---------------------------------------------------------------------------
# embedding / verification quality
# ---------------------------------------------------------------------------


def test_pair_distances_345_triangle():
    # points (0,0) p, (3,0) p, (0,4) q
    # same: (0,1) = 3; different: (0,2) = 4, (1,2) = sqrt(9+16) = 5
    same, diff = pair_distances([[0, 0], [3, 0], [0, 4]], ["p", "p", "q"])
    assert same.tolist() == approx([3.0])
    assert diff.tolist() == approx([4.0, 5.0])


def test_verification_perfectly_separable():
    # 1-d points 0, 1 (a) and 10, 11.5 (b)
    # same: |0-1| = 1, |10-11.5| = 1.5     different: 10, 11.5, 9, 10.5
    # every same distance < every different one -> AUC 1, TAR 1 at FAR 0,
    # EER 0 at threshold 1.5 (largest same distance, accepts no different pair)
    r = verification_report([[0.0], [1.0], [10.0], [11.5]], list("aabb"))
    assert r["roc_auc"] == approx(1.0)
    assert r["eer"] == approx(0.0)
    assert r["eer_threshold"] == approx(1.5)
    assert r["tar_at_far_1e-3"] == approx(1.0)
    assert r["tar_at_far_1e-2"] == approx(1.0)
    assert r["n_same_pairs"] == 2 and r["n_different_pairs"] == 4
    assert r["pairs_sampled"] is False
    assert r["same_mean"] == approx(1.25)
    assert r["different_mean"] == approx(10.25)


# Overlap case: 1-d points 0, 1 (a) and 2.5, 5.5 (b)
#   same:      |0-1| = 1,  |2.5-5.5| = 3
#   different: |0-2.5| = 2.5, |0-5.5| = 5.5, |1-2.5| = 1.5, |1-5.5| = 4.5
# AUC = P(same distance < different distance) over the 2*4 = 8 combinations:
#   same 1 beats all 4; same 3 beats 4.5, 5.5 only -> 6/8 = 0.75
# ROC, accepting distance <= t:
#   t      TAR  FAR  FRR=1-TAR
#   1      1/2  0    1/2
#   1.5    1/2  1/4  1/2
#   2.5    1/2  1/2  1/2   <- FAR == FRR: EER 0.5 at t = 2.5
#   3      1    1/2  0
#   4.5    1    3/4  0
#   5.5    1    1    0
# TAR at FAR <= 1e-3 (and 1e-2): only FAR 0 allowed -> 1/2 (t = 1)
# TAR at FAR <= 1/2: 1 (t = 3)
# same mean 2, std 1; different mean 14/4 = 3.5, deviations -1, 2, -2, 1
#   -> variance 10/4, std sqrt(2.5)
OVERLAP_X = [[0.0], [1.0], [2.5], [5.5]]
OVERLAP_SAME = [1.0, 3.0]
OVERLAP_DIFF = [2.5, 5.5, 1.5, 4.5]


def test_verification_one_overlap_by_hand():
    same, diff = pair_distances(OVERLAP_X, list("aabb"))
    assert sorted(same) == approx(OVERLAP_SAME)
    assert list(diff) == approx(OVERLAP_DIFF)  # (0,2) (0,3) (1,2) (1,3)
    r = verification_report(OVERLAP_X, list("aabb"))
    assert r["roc_auc"] == approx(0.75)
    assert r["eer"] == approx(0.5)
    assert r["eer_threshold"] == approx(2.5)
    assert r["tar_at_far_1e-3"] == approx(0.5)
    assert r["tar_at_far_1e-2"] == approx(0.5)
    assert r["same_mean"] == approx(2.0) and r["same_std"] == approx(1.0)
    assert r["different_mean"] == approx(3.5)
    assert r["different_std"] == approx(math.sqrt(2.5))


def test_tar_at_far_and_eer_on_distances():
    assert tar_at_far(OVERLAP_SAME, OVERLAP_DIFF, 0.0) == approx((0.5, 1.0))
    assert tar_at_far(OVERLAP_SAME, OVERLAP_DIFF, 0.25) == approx((0.5, 1.0))
    assert tar_at_far(OVERLAP_SAME, OVERLAP_DIFF, 0.5) == approx((1.0, 3.0))
    assert equal_error_rate(OVERLAP_SAME, OVERLAP_DIFF) == approx((0.5, 2.5))


def test_auc_counts_ties_as_half():
    # 1-d points 0, 1 (a) and 3, 5 (b)
    # same: 1, 2;  different: |0-3| = 3, |0-5| = 5, |1-3| = 2, |1-5| = 4
    # combinations: same 1 beats all 4; same 2 ties different 2 (counts 1/2)
    # and beats 3, 4, 5 -> AUC = (4 + 3 + 0.5) / 8 = 7.5/8
    r = verification_report([[0.0], [1.0], [3.0], [5.0]], list("aabb"))
    assert r["roc_auc"] == approx(7.5 / 8)


def test_verification_needs_both_kinds_of_pairs():
    with pytest.raises(ValueError):
        verification_report([[0.0], [1.0]], ["a", "a"])  # no different pair
    with pytest.raises(ValueError):
        verification_report([[0.0], [1.0]], ["a", "b"])  # no same pair
    with pytest.raises(ValueError):
        verification_report([[0.0], [1.0]], ["a"])  # length mismatch


def _nearest_gap(values, reference):
    reference = np.sort(reference)
    return max(np.min(np.abs(reference - v)) for v in values)


def test_sampling_keeps_all_same_pairs_when_they_fit():
    # 30 faces, 3 identities of 10: 3*C(10,2) = 135 same, C(30,2)-135 = 300 different
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))
    labels = np.repeat(["a", "b", "c"], 10)
    all_same, all_diff = pair_distances(X, labels)
    assert (len(all_same), len(all_diff)) == (135, 300)
    # budget 300 < 435 pairs: all 135 same pairs fit in 150, 165 different sampled
    same, diff = pair_distances(X, labels, max_pairs=300, seed=3)
    assert np.sort(same) == approx(np.sort(all_same))
    assert len(diff) == 165
    assert _nearest_gap(diff, all_diff) < 1e-9
    again = pair_distances(X, labels, max_pairs=300, seed=3)
    assert np.array_equal(again[1], diff)  # deterministic


def test_sampling_same_pairs_when_too_many():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))
    labels = np.repeat(["a", "b", "c"], 10)
    _, all_diff = pair_distances(X, labels)
    all_same, _ = pair_distances(X, labels)
    same, diff = pair_distances(X, labels, max_pairs=100, seed=0)
    assert (len(same), len(diff)) == (50, 50)
    assert _nearest_gap(same, all_same) < 1e-9
    assert _nearest_gap(diff, all_diff) < 1e-9


def test_verification_report_flags_sampling():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))
    labels = np.repeat(["a", "b", "c"], 10)
    r = verification_report(X, labels, max_pairs=300)
    assert r["pairs_sampled"] is True
    assert (r["n_same_pairs"], r["n_different_pairs"]) == (135, 165)
    assert r == verification_report(X, labels, max_pairs=300)
    assert verification_report(X, labels)["pairs_sampled"] is False


# ---------------------------------------------------------------------------
# boxes
# ---------------------------------------------------------------------------


def test_iou_known_boxes():
    # overlap 1x1 = 1, union 4 + 4 - 1 = 7
    assert iou((0, 0, 2, 2), (1, 1, 3, 3)) == approx(1 / 7)
    assert iou((0, 0, 2, 2), (0, 0, 2, 2)) == approx(1.0)
    # contained: 2x2 inside 4x4 -> 4/16
    assert iou((0, 0, 4, 4), (1, 1, 3, 3)) == approx(0.25)
    # half overlap horizontally: 10x5 over union 10x10 + 10x10 - 50 = 150 -> 1/3
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == approx(1 / 3)
    assert iou((0, 0, 1, 1), (1, 0, 2, 1)) == 0.0  # touching edges
    assert iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0  # disjoint
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # zero area


def test_match_boxes_with_decoy():
    labelled = [(0, 0, 10, 10), (20, 0, 30, 10)]
    detected = [
        (5, 0, 15, 10),   # decoy: IoU 1/3 with labelled 0, 0 with labelled 1
        (0, 0, 10, 11),   # IoU 100/110 with labelled 0
        (22, 0, 32, 10),  # overlap 8x10 = 80, union 100+100-80 = 120 -> 2/3 with 1
    ]
    assert match_boxes(labelled, detected) == [(0, 1), (1, 2)]


def test_match_boxes_below_min_iou_left_unmatched():
    labelled = [(0, 0, 10, 10), (50, 50, 60, 60)]
    detected = [(5, 0, 15, 10), (50, 50, 60, 60)]  # IoU 1/3 and 1
    assert match_boxes(labelled, detected) == [(1, 1)]
    assert match_boxes(labelled, detected, min_iou=0.3) == [(0, 0), (1, 1)]


def test_match_boxes_one_to_one_and_empty():
    # two detections on one face: only the better one is matched
    assert match_boxes([(0, 0, 10, 10)], [(0, 0, 10, 12), (0, 0, 10, 10)]) == [(0, 1)]
    assert match_boxes([], [(0, 0, 1, 1)]) == []
    assert match_boxes([(0, 0, 1, 1)], []) == []
