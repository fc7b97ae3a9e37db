"""Tests of synapflow_assets.evaluation with hand-computed numbers."""

import math

import numpy as np
import polars as pl
import pytest

from synapflow_assets.evaluation import box_iou, precision_recall_f1, spine_f1_3d, spines_from_boxes, tracking_scores

COLUMNS = ["layer", "id", "xmin", "ymin", "xmax", "ymax"]
SPINE_COLUMNS = ["id", "xmin", "ymin", "xmax", "ymax", "z_start", "z_end"]


def boxes(rows, columns=COLUMNS):
    return pl.DataFrame(rows, schema=columns, orient="row").with_columns(
        pl.col(["xmin", "ymin", "xmax", "ymax"]).cast(pl.Float64)
    )


def grid_tracks(n_objects=4, n_frames=6):
    """n_objects well-separated static 10x10 boxes present in every frame."""
    return boxes([(f, i, 20.0 * i, 0.0, 20.0 * i + 10, 10.0) for f in range(n_frames) for i in range(n_objects)])


def random_case(seed):
    """Moving objects with jitter, dropped and spurious boxes, and swapped ids."""
    rng = np.random.default_rng(seed)
    truth, pred = [], []
    for obj in range(6):
        start = rng.integers(0, 4)
        stop = rng.integers(8, 14)
        origin = rng.uniform(0, 200, 2)
        velocity = rng.uniform(-3, 3, 2)
        for f in range(start, stop):
            x, y = origin + velocity * f
            truth.append((f, 100 + obj, x, y, x + 12, y + 12))
            if rng.random() < 0.15:
                continue  # miss
            jx, jy = rng.normal(0, 2.0, 2)
            pid = obj if f < 7 or obj > 1 else 1 - obj  # ids 0 and 1 swap at frame 7
            pid = pid if rng.random() > 0.05 else 50 + obj  # occasional fresh id
            pred.append((f, pid, x + jx, y + jy, x + jx + 12, y + jy + 12))
    for k in range(8):
        f = int(rng.integers(0, 14))
        x, y = rng.uniform(300, 400, 2)
        pred.append((f, 200 + k, x, y, x + 10, y + 10))
    return boxes(truth), boxes(pred)


# box_iou ---------------------------------------------------------------------


def test_box_iou_hand_cases():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 5]], dtype=float)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10], [0, 0, 0, 5]], dtype=float)
    iou = box_iou(a, b)
    assert iou.shape == (2, 4)
    np.testing.assert_allclose(iou[0], [1.0, 0.0, 1 / 3, 0.0])
    np.testing.assert_array_equal(iou[1], [0.0, 0.0, 0.0, 0.0])  # zero area: 0, not NaN
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


# tracking_scores ---------------------------------------------------------------


def test_perfect_tracking_with_renamed_ids():
    truth = grid_tracks()
    predicted = truth.with_columns(id=pl.col("id") * 37 + 5)
    s = tracking_scores(truth, predicted)
    assert s["mota"] == 1.0 and s["idf1"] == 1.0 and s["motp"] == 1.0
    assert s["hota"] == pytest.approx(1.0) and s["deta"] == pytest.approx(1.0)
    assert s["id_switches"] == 0 and s["fragmentations"] == 0
    assert (s["num_truth"], s["num_predicted"], s["num_matches"]) == (24, 24, 24)
    assert (s["num_truth_ids"], s["num_predicted_ids"]) == (4, 4)


def test_identity_switch():
    truth = grid_tracks(n_objects=2, n_frames=6)
    swapped = truth.with_columns(id=pl.when(pl.col("layer") < 3).then(pl.col("id")).otherwise(1 - pl.col("id")))
    s = tracking_scores(truth, swapped)
    # Both truth objects change predicted id at frame 3: 2 switches.
    assert s["id_switches"] == 2
    # Best id mapping keeps 3 of 6 frames per object: IDF1 = 2*6 / (12 + 12).
    assert s["idf1"] == pytest.approx(0.5)
    assert s["mota"] == pytest.approx(1 - 2 / 12)
    assert s["recall"] == 1.0 and s["precision"] == 1.0
    # HOTA: DetA 1; each truth id shares 3 of 6 frames with each predicted id: AssA 3/9.
    assert s["deta"] == pytest.approx(1.0)
    assert s["assa"] == pytest.approx(1 / 3)
    assert s["hota"] == pytest.approx(math.sqrt(1 / 3))


@pytest.mark.parametrize("k", [1, 5])
def test_misses_and_false_positives(k):
    truth = grid_tracks()
    n = truth.height
    dropped = truth.sample(n - k, seed=k, shuffle=True)
    s = tracking_scores(truth, dropped)
    assert s["misses"] == k and s["false_positives"] == 0
    assert s["recall"] == pytest.approx((n - k) / n)
    assert s["mota"] == pytest.approx(1 - k / n)
    assert s["precision"] == 1.0

    f = k + 2
    spurious = boxes([(i % 6, 900 + i, 500.0 + 20 * i, 500.0, 510.0 + 20 * i, 510.0) for i in range(f)])
    s = tracking_scores(truth, pl.concat([truth, spurious]))
    assert s["false_positives"] == f and s["misses"] == 0
    assert s["precision"] == pytest.approx(n / (n + f))
    assert s["mota"] == pytest.approx(1 - f / n)


def test_iou_threshold_decides_a_match():
    truth = boxes([(0, 1, 0, 0, 10, 10)])
    shifted = boxes([(0, 1, 5, 0, 15, 10)])  # IoU 1/3
    assert tracking_scores(truth, shifted, iou_threshold=0.5)["num_matches"] == 0
    s = tracking_scores(truth, shifted, iou_threshold=0.3)
    assert s["num_matches"] == 1 and s["motp"] == pytest.approx(1 / 3)


def test_random_relabelling_changes_nothing():
    truth, pred = random_case(1)
    ids = pred["id"].unique().sort().to_numpy()
    mapping = dict(zip(ids.tolist(), np.random.default_rng(3).permutation(ids * 11 + 7).tolist(), strict=False))
    relabelled = pred.with_columns(id=pl.col("id").replace_strict(mapping))
    string_ids = pred.with_columns(id=pl.col("id").cast(pl.String))
    base = tracking_scores(truth, pred)
    for other in (relabelled, string_ids, pred.sample(fraction=1.0, shuffle=True, seed=2)):
        s = tracking_scores(truth, other)
        assert s.keys() == base.keys()
        for key in base:
            assert s[key] == pytest.approx(base[key]), key


#: MOTA, MOTP, IDF1, ID switches and fragmentations that motmetrics 1.4 gave on ``random_case(seed)``.
MOTMETRICS_FIGURES = {
    0: (0.16981132075471694, 0.6888596564214989, 0.5283018867924528, 2, 10),
    1: (0.31746031746031744, 0.707336739405451, 0.5645161290322581, 7, 13),
    2: (0.08695652173913049, 0.7130657761106696, 0.5510204081632653, 6, 7),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clear_and_identity_figures_are_those_of_motmetrics(seed):
    s = tracking_scores(*random_case(seed))
    assert s["id_switches"] > 0 and s["misses"] > 0 and s["false_positives"] > 0
    figures = (s["mota"], s["motp"], s["idf1"], s["id_switches"], s["fragmentations"])
    assert figures == pytest.approx(MOTMETRICS_FIGURES[seed], rel=1e-12)


def test_sequences_combine_like_one_long_disjoint_sequence():
    (t1, p1), (t2, p2) = random_case(4), random_case(5)
    together = tracking_scores(
        pl.concat([t1.with_columns(sequence=pl.lit("a")), t2.with_columns(sequence=pl.lit("b"))]),
        pl.concat([p1.with_columns(sequence=pl.lit("a")), p2.with_columns(sequence=pl.lit("b"))]),
    )
    one, two = tracking_scores(t1, p1), tracking_scores(t2, p2)
    for key in (
        "num_truth",
        "num_predicted",
        "num_matches",
        "false_positives",
        "misses",
        "id_switches",
        "fragmentations",
        "num_truth_ids",
        "num_predicted_ids",
    ):
        assert together[key] == one[key] + two[key], key
    # CLEAR: counts summed.
    errors = sum(s["misses"] + s["false_positives"] + s["id_switches"] for s in (one, two))
    assert together["mota"] == pytest.approx(1 - errors / together["num_truth"])
    # Identity: IDTP summed (IDF1 = 2 IDTP / (n_truth + n_predicted)).
    idtp = sum(s["idf1"] * (s["num_truth"] + s["num_predicted"]) / 2 for s in (one, two))
    assert together["idf1"] == pytest.approx(2 * idtp / (together["num_truth"] + together["num_predicted"]))
    # HOTA's combine_sequences equals scoring one sequence made of both, frames and ids disjoint.
    shift = pl.col("layer") + 1000
    concatenated = tracking_scores(
        pl.concat([t1, t2.with_columns(layer=shift, id=pl.col("id") + 10_000)]),
        pl.concat([p1, p2.with_columns(layer=shift, id=pl.col("id") + 10_000)]),
    )
    for key in ("hota", "deta", "assa", "mota", "idf1", "motp"):
        assert together[key] == pytest.approx(concatenated[key]), key
    assert min(one["hota"], two["hota"]) <= together["hota"] <= max(one["hota"], two["hota"])


def test_empty_inputs_and_empty_frames():
    truth = grid_tracks(n_objects=2, n_frames=4)
    empty = truth.head(0)
    both = tracking_scores(empty, empty)
    assert both["num_truth"] == 0 and math.isnan(both["mota"]) and math.isnan(both["hota"])
    no_pred = tracking_scores(truth, empty)
    assert no_pred["recall"] == 0.0 and no_pred["mota"] == 0.0 and no_pred["hota"] == 0.0
    assert math.isnan(no_pred["precision"]) and no_pred["misses"] == 8
    no_truth = tracking_scores(empty, truth)
    assert no_truth["precision"] == 0.0 and math.isnan(no_truth["mota"])
    # A frame with truth only and a frame with predictions only.
    pred = pl.concat([truth.filter(pl.col("layer") != 2), boxes([(7, 5, 0, 0, 10, 10)])])
    s = tracking_scores(truth, pred)
    assert (s["misses"], s["false_positives"], s["num_matches"]) == (2, 1, 6)
    assert s["fragmentations"] == 0  # trackeval: a frame without any prediction interrupts no track


def test_bad_inputs_raise():
    truth = grid_tracks(n_objects=1, n_frames=2)
    with pytest.raises(ValueError, match="columns"):
        tracking_scores(truth.drop("xmax"), truth)
    with pytest.raises(ValueError, match="twice"):
        tracking_scores(truth, pl.concat([truth, truth]))


# spine_f1_3d -------------------------------------------------------------------


def spines(rows):
    return pl.DataFrame(rows, schema=SPINE_COLUMNS, orient="row").with_columns(
        pl.col(["xmin", "ymin", "xmax", "ymax"]).cast(pl.Float64)
    )


def test_spine_z_overlap_rule():
    truth = spines([(1, 0, 0, 10, 10, 0, 3)])  # 4 layers
    half = spines([(9, 2, 2, 12, 12, 2, 5)])  # overlap 2 of 4: 50 %
    assert spine_f1_3d(truth, half)["tp"] == 0
    truth5 = spines([(1, 0, 0, 10, 10, 0, 4)])  # 5 layers
    sixty = spines([(9, 2, 2, 12, 12, 2, 8)])  # overlap 3 of 5: 60 %
    assert spine_f1_3d(truth5, sixty)["tp"] == 1
    disjoint_xy = spines([(9, 20, 20, 30, 30, 0, 4)])
    assert spine_f1_3d(truth5, disjoint_xy)["tp"] == 0
    touching = spines([(9, 10, 0, 20, 10, 0, 4)])  # shares an edge only: IoU 0
    assert spine_f1_3d(truth5, touching)["tp"] == 0
    assert spine_f1_3d(truth5, sixty, iou_threshold=0.9)["tp"] == 0


def test_spine_f1_counts_and_one_to_one():
    truth = spines([(1, 0, 0, 10, 10, 0, 4), (2, 50, 50, 60, 60, 0, 4), (3, 100, 0, 110, 10, 2, 6)])
    pred = spines(
        [
            (7, 1, 1, 11, 11, 0, 4),  # matches 1
            (8, 0, 0, 10, 10, 1, 4),  # also overlaps 1 only: one-to-one leaves it a FP
            (9, 100, 0, 110, 10, 3, 6),  # matches 3
            (10, 300, 300, 310, 310, 0, 4),
        ]
    )
    s = spine_f1_3d(truth, pred)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 2, 1)
    assert s["precision"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))


def test_spine_assignment_maximises_matches():
    # Predicted A overlaps truth X and Y (better IoU with X); B only X. Optimal: A-Y, B-X.
    truth = spines([(1, 0, 0, 10, 10, 0, 4), (2, 8, 0, 18, 10, 0, 4)])
    pred = spines([(1, 1, 0, 11, 10, 0, 4), (2, -2, 0, 8, 10, 0, 4)])
    assert spine_f1_3d(truth, pred)["tp"] == 2
    empty = spine_f1_3d(truth, pred.head(0))
    assert (empty["tp"], empty["fn"], empty["recall"]) == (0, 2, 0.0) and math.isnan(empty["precision"])


def test_spines_from_boxes():
    layer_boxes = boxes([(2, 5, 0, 0, 10, 10), (3, 5, 2, 0, 12, 10), (4, 5, 4, 0, 14, 10), (0, 9, 50, 50, 60, 60)])
    table = spines_from_boxes(layer_boxes)
    assert table.columns == SPINE_COLUMNS
    first = table.row(0, named=True)
    assert (first["id"], first["xmin"], first["xmax"], first["z_start"], first["z_end"]) == (5, 2.0, 12.0, 2, 4)
    assert spine_f1_3d(table, table)["f1"] == 1.0


def test_precision_recall_f1_of_empty_inputs():
    """The one convention of every detection score: a ratio with a zero denominator is NaN."""
    assert precision_recall_f1(3, 4, 6) == {"precision": 0.75, "recall": 0.5, "f1": 0.6, "tp": 3, "fp": 1, "fn": 3}
    no_prediction = precision_recall_f1(0, 0, 5)
    assert math.isnan(no_prediction["precision"]) and (no_prediction["recall"], no_prediction["f1"]) == (0.0, 0.0)
    no_truth = precision_recall_f1(0, 5, 0)
    assert math.isnan(no_truth["recall"]) and (no_truth["precision"], no_truth["f1"], no_truth["fp"]) == (0.0, 0.0, 5)
    neither = precision_recall_f1(0, 0, 0)
    assert all(math.isnan(neither[k]) for k in ("precision", "recall", "f1"))
    with pytest.raises(ValueError):
        precision_recall_f1(3, 2, 5)
