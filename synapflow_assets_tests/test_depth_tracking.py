import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from synapflow_assets.__main__ import main
from synapflow_assets.evaluation import tracking_scores
from synapflow_assets.geometry import pairwise_giou
from synapflow_assets.tracking.box_tables import link_table, read_reference_boxes
from synapflow_assets.tracking.depth import METHOD_PARAMS, BoxError, DepthLinkParams, link_layers
from synapflow_assets.tracking.spines import summarize_spines

SHARED = Path(os.environ.get("SYNAPFLOW_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PLAIN = DepthLinkParams(smooth_layers=0, fill_gaps=0)


def test_giou_values_and_invariance_to_non_square_normalisation():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 0, 30, 10]])
    np.testing.assert_allclose(pairwise_giou(a, b), [[1.0, 1 / 3, -1 / 3]])
    scale = np.array([1 / 300, 1 / 100, 1 / 300, 1 / 100])
    np.testing.assert_allclose(pairwise_giou(a * scale, b * scale), pairwise_giou(a, b))


def spine_boxes():
    """Three spines: A on layers 0-4 with layer 2 missing, B on 1-3, C far away on 3-5; one stray box."""
    rows = [(k, [10 + k * 0.5, 10, 22 + k * 0.5, 24]) for k in (0, 1, 3, 4)]
    rows += [(k, [40, 40, 52, 50]) for k in (1, 2, 3)]
    rows += [(k, [200, 60, 214, 75]) for k in (3, 4, 5)]
    rows += [(2, [120, 10, 130, 20])]
    layers = np.array([r[0] for r in rows])
    return layers, np.array([r[1] for r in rows], dtype=float)


def test_links_spines_bridges_a_missed_layer_and_fills_it():
    layers, boxes = spine_boxes()
    ids, gaps = link_layers(layers, boxes, DepthLinkParams(fill_gaps=1), image_size=(100, 300))
    assert ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 3, 3, 3, 2]
    assert gaps.shape == (1, 6) and gaps[0, :2].tolist() == [0, 2]
    np.testing.assert_allclose(gaps[0, 2:], [11.0, 10, 23.0, 24])


def test_method_parameters_split_a_spine_missed_on_two_layers_ours_do_not():
    layers, boxes = spine_boxes()
    keep = layers != 3
    method_ids, _ = link_layers(layers[keep], boxes[keep], METHOD_PARAMS)
    ours_ids, _ = link_layers(layers[keep], boxes[keep], DepthLinkParams())
    assert method_ids[0] == method_ids[1] and method_ids[2] != method_ids[0]
    assert ours_ids[0] == ours_ids[1] == ours_ids[2]


def test_min_layers_drops_one_layer_spines_and_renumbers():
    layers, boxes = spine_boxes()
    ids, _ = link_layers(layers, boxes, DepthLinkParams(min_layers=2, fill_gaps=0))
    assert ids[-1] == -1
    assert sorted(set(ids[ids >= 0].tolist())) == [0, 1, 2]


@pytest.mark.parametrize(
    "bad, message",
    [
        ([[0, 0, np.nan, 5]], "NaN or infinite"),
        ([[5, 0, 5, 10]], "zero or negative width"),
        ([[10, 0, 4, 10]], "zero or negative width"),
        ([[400, 0, 410, 10]], "entirely outside the 300x100 image"),
    ],
)
def test_bad_boxes_give_clear_errors(bad, message):
    layers, boxes = spine_boxes()
    boxes = np.vstack([boxes, bad])
    with pytest.raises(BoxError, match=message) as error:
        link_layers(np.append(layers, 1), boxes, image_size=(100, 300))
    assert f"rows {len(layers)}" in str(error.value)


def test_empty_stack_and_empty_layers():
    ids, gaps = link_layers(np.zeros(0, int), np.zeros((0, 4)))
    assert ids.shape == (0,) and gaps.shape == (0, 6)
    ids, _ = link_layers(
        np.array([0, 5]), np.array([[0, 0, 9, 9], [0, 0, 9, 9]], float), DepthLinkParams(inactive_wait=1)
    )
    assert ids.tolist() == [0, 1]


def test_spine_summary_in_pixels_and_micrometres():
    layers, boxes = spine_boxes()
    ids, _ = link_layers(layers, boxes, PLAIN)
    table = pl.DataFrame(
        {
            "id": ids,
            "layer": layers,
            "score": np.linspace(0.5, 0.9, len(ids)),
            **{c: boxes[:, k] for k, c in enumerate(["xmin", "ymin", "xmax", "ymax"])},
        }
    )
    spines = summarize_spines(table, (2.0, 0.1, 0.2))
    b = spines.filter(pl.col("spine_id") == 1).row(0, named=True)
    assert (b["first_layer"], b["last_layer"], b["n_layers"], b["peak_layer"]) == (1, 3, 3, 3)
    assert b["x_px"] == 46 and b["y_px"] == 45
    assert b["x_um"] == pytest.approx(9.2) and b["y_um"] == pytest.approx(4.5)
    assert b["z_um"] == pytest.approx(2.0 * b["z_px"]) and 1.9 < b["z_px"] < 2.2


def test_track_depth_command_round_trip(tmp_path):
    rows = ["filename,width,height,class,score,xmin,ymin,xmax,ymax,id"]
    for stack in ("a", "b"):
        for layer in (1, 2, 4, 10):
            rows.append(f"{stack}_layer{layer:02d}.png,512,256,spine,0.9,10,10,22,24,7")
    path = tmp_path / "in.csv"
    path.write_text("\n".join(rows))
    assert main(["track-depth", "--boxes", str(path), "--out", str(tmp_path / "out.csv")]) == 0
    out = pl.read_csv(tmp_path / "out.csv")
    assert out.columns[:10] == ["id", "filename", "width", "height", "class", "score", "xmin", "ymin", "xmax", "ymax"]
    assert out["filename"].to_list() == [r.split(",")[0] for r in rows[1:]] and not out["interpolated"].any()
    assert out["id"].to_list() == [0, 0, 0, 1, 2, 2, 2, 3]
    assert main(["track-depth", "--boxes", str(path), "--out", str(tmp_path / "filled.csv"), "--fill-gaps", "2"]) == 0
    filled = pl.read_csv(tmp_path / "filled.csv").filter(pl.col("interpolated"))
    assert sorted(filled["filename"].to_list()) == ["a_layer03.png", "b_layer03.png"]
    assert main(["track-depth", "--boxes", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x.csv")]) == 2


def test_bad_csv_names_the_file(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("filename,width,height,class,score,xmin,ymin,xmax,ymax\ns-01.png,512,512,spine,0.9,10,10,nan,20\n")
    assert main(["track-depth", "--boxes", str(path), "--out", str(tmp_path / "o.csv")]) == 2
    assert "bad.csv" in capsys.readouterr().err
    path.write_text("filename,width\nx.png,3\n")
    with pytest.raises(BoxError, match="missing columns"):
        read_reference_boxes(path)


@pytest.mark.skipif(
    not (SHARED / "depth_tracking_gt").is_dir(), reason=f"expert annotations not found at {SHARED}/depth_tracking_gt"
)
@pytest.mark.parametrize("variant", ["data_tracking", "data_tracking_min", "data_tracking_maj", "data_tracking_max"])
def test_relinking_real_expert_boxes_reaches_idf1_target(variant):
    path = SHARED / "depth_tracking_gt" / f"{variant}.csv"
    truth = read_reference_boxes(path).with_columns(id=pl.read_csv(path)["id"])
    linked = link_table(truth.drop("id"))
    scores = tracking_scores(
        truth.rename({"stack": "sequence"}), linked.filter(pl.col("id") >= 0).rename({"stack": "sequence"})
    )
    print(variant, scores["idf1"], scores["mota"])
    assert scores["idf1"] >= 0.995
    assert scores["mota"] >= 0.995


def dense_field(n_boxes: int, seed: int, field: float = 1500.0):
    """Boxes of spines 3-7 layers deep over 60 layers, 10% missed: dense enough for chains of candidates."""
    rng = np.random.default_rng(seed)
    n_spines = n_boxes // 5
    start = rng.integers(0, 55, n_spines)
    length = rng.integers(3, 8, n_spines)
    spine = np.repeat(np.arange(n_spines), length)
    layer = start[spine] + np.concatenate([np.arange(k) for k in length])
    centre = rng.random((n_spines, 2)) * field
    size = rng.uniform(8, 25, n_spines)
    boxes = np.hstack([centre[spine] - size[spine, None] / 2, centre[spine] + size[spine, None] / 2])
    boxes += rng.normal(0, 1.0, boxes.shape)
    keep = rng.random(len(layer)) > 0.1
    return layer[keep], boxes[keep]


@pytest.mark.parametrize(
    "params",
    [DepthLinkParams(), DepthLinkParams(fill_gaps=3), DepthLinkParams(min_layers=2, max_centre_distance_px=30)],
)
def test_sparse_linking_of_large_layers_equals_the_dense_assignment(params, monkeypatch):
    from synapflow_assets.tracking import depth

    layer, boxes = dense_field(8000, seed=1)
    ids, gaps = link_layers(layer, boxes, params)
    monkeypatch.setattr(depth, "_DENSE_PAIRS", 10**18)
    dense_ids, dense_gaps = link_layers(layer, boxes, params)
    np.testing.assert_array_equal(ids, dense_ids)
    np.testing.assert_array_equal(gaps, dense_gaps)
    assert len(np.unique(ids)) < len(ids) / 2


def test_sparse_assign_solves_each_component_as_the_dense_assignment():
    from synapflow_assets.tracking.depth import FORBIDDEN, assign, sparse_assign

    rng = np.random.default_rng(3)
    for _ in range(20):
        n, m = rng.integers(1, 40, 2)
        allowed = rng.random((n, m)) < 0.08
        cost = np.where(allowed, -rng.random((n, m)), FORBIDDEN)
        i, j = np.nonzero(allowed)
        rows, cols = sparse_assign(i, j, cost[i, j], n, m)
        dense_rows, dense_cols = assign(cost, FORBIDDEN)
        np.testing.assert_array_equal(rows, dense_rows)
        np.testing.assert_array_equal(cols, dense_cols)
    empty = sparse_assign(np.zeros(0, int), np.zeros(0, int), np.zeros(0), 3, 4)
    assert [len(e) for e in empty] == [0, 0]


def test_gap_boxes_interpolate_each_bridged_layer():
    from synapflow_assets.tracking.depth import _gap_boxes

    before_box = np.array([[0.0, 0, 10, 10], [5, 5, 9, 9]])
    after_box = np.array([[3.0, 0, 13, 10], [5, 5, 9, 9]])
    rows = _gap_boxes(np.array([4, 7]), np.array([2, 4]), before_box, after_box, 5)
    # track 7 was seen on the layer before: nothing to fill
    np.testing.assert_allclose(rows, [[4, 3, 1, 0, 11, 10], [4, 4, 2, 0, 12, 10]])


def test_overlapping_pairs_are_the_pairs_with_positive_intersection():
    from synapflow_assets.geometry import box_cover, paired_box_cover
    from synapflow_assets.tracking.candidate_pairs import overlapping_pairs, overlapping_pairs_within

    rng = np.random.default_rng(5)
    centre, half = rng.uniform(0, 200, (300, 2)), rng.uniform(1, 9, (300, 2))
    a = np.hstack([centre - half, centre + half])
    b = a[::-1] + rng.normal(0, 3, a.shape)
    i, j = overlapping_pairs(a, b)
    dense_i, dense_j = np.nonzero(box_cover(a, b) > 0)
    np.testing.assert_array_equal(i, dense_i)
    np.testing.assert_array_equal(j, dense_j)
    np.testing.assert_array_equal(paired_box_cover(a[i], b[j]), box_cover(a, b)[i, j])
    i, j = overlapping_pairs_within(a)
    dense_i, dense_j = np.nonzero(np.triu(box_cover(a, a) > 0, k=1))
    np.testing.assert_array_equal(i, dense_i)
    np.testing.assert_array_equal(j, dense_j)


def test_duplicates_and_detector_response_from_overlapping_pairs_equal_the_dense_ones(monkeypatch):
    from synapflow_assets.tracking import duplicates, evidence

    rng = np.random.default_rng(0)
    n = 2100
    centre, half = rng.uniform(0, 500, (n, 2)), rng.uniform(2, 8, (n, 2))
    box = np.hstack([centre - half, centre + half])
    first = rng.integers(0, 10, n)
    last = first + rng.integers(0, 4, n)
    spines = pl.DataFrame(
        {
            "spine_id": np.arange(n) * 3 + 1,
            "first_layer": first,
            "last_layer": last,
            **{c: box[:, k] for k, c in enumerate(("xmin", "ymin", "xmax", "ymax"))},
            "mean_score": rng.random(n),
        }
    )
    plane = spines.with_columns(first_layer=pl.lit(0), last_layer=pl.lit(0))
    sparse = [duplicates.duplicate_keeper(spines), duplicates.duplicate_keeper(plane)]
    monkeypatch.setattr(duplicates, "_DENSE_SPINES", 10**9)
    dense = [duplicates.duplicate_keeper(spines), duplicates.duplicate_keeper(plane)]
    assert all(s.equals(d) for s, d in zip(sparse, dense, strict=True))
    assert (dense[1]["spine_id"] != dense[1]["keeper_id"]).sum() > 100
    assert (dense[0]["spine_id"] != dense[0]["keeper_id"]).sum() > 5
    k = 8000
    centre, half = rng.uniform(0, 500, (k, 2)), rng.uniform(2, 8, (k, 2))
    candidate = np.hstack([centre - half, centre + half])
    candidates = pl.DataFrame(
        {
            "layer": rng.integers(0, 12, k),
            **{c: candidate[:, m] for m, c in enumerate(("xmin", "ymin", "xmax", "ymax"))},
            "score": rng.random(k),
        }
    )
    for min_iou in (0.5, 0.1):
        monkeypatch.setattr(evidence, "_DENSE_PAIRS", 0)
        sparse_response = evidence.detector_response(candidates, box, first, last, min_iou)
        monkeypatch.setattr(evidence, "_DENSE_PAIRS", 10**18)
        dense_response = evidence.detector_response(candidates, box, first, last, min_iou)
        np.testing.assert_array_equal(sparse_response, dense_response)
        assert (dense_response > 0).sum() > 100
