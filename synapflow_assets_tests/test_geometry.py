"""Box geometry (synapflow_assets.geometry): IoU, GIoU, NMS, centres, with hand-computed numbers."""

import numpy as np
import polars as pl
import pytest

from synapflow_assets.geometry import (
    BOX_COLUMNS,
    BOX_SCHEMA,
    box_iou,
    centre_distance,
    centres,
    giou,
    iou,
    nms,
    paired_centre_distance,
    pairwise_giou,
)

UNIT = [0.0, 0.0, 10.0, 10.0]


def test_columns_and_schema():
    assert BOX_COLUMNS == ("xmin", "ymin", "xmax", "ymax")
    assert list(BOX_SCHEMA)[:4] == list(BOX_COLUMNS)
    assert BOX_SCHEMA["score"] == pl.Float64 and BOX_SCHEMA["type"] == pl.String
    assert pl.DataFrame(schema=BOX_SCHEMA).select(BOX_COLUMNS).columns == list(BOX_COLUMNS)


def test_box_iou_known_pairs():
    b = np.array(
        [
            UNIT,  # identical -> 1
            [20.0, 20.0, 30.0, 30.0],  # disjoint -> 0
            [5.0, 0.0, 15.0, 10.0],  # half of each overlaps: 50 / 150 -> 1/3
            [2.0, 2.0, 7.0, 7.0],  # contained: 25 / 100 -> 1/4
            [10.0, 0.0, 20.0, 10.0],  # touching edge -> 0
            [-5.0, -5.0, 15.0, 15.0],  # containing: 100 / 400 -> 1/4
        ]
    )
    out = box_iou([UNIT], b)
    assert out.shape == (1, 6) and out.dtype == np.float64
    np.testing.assert_allclose(out[0], [1.0, 0.0, 1 / 3, 0.25, 0.0, 0.25])
    np.testing.assert_allclose(box_iou(b, [UNIT])[:, 0], out[0])  # symmetric


def test_box_iou_degenerate_boxes_score_zero_not_nan():
    point = [3.0, 3.0, 3.0, 3.0]
    inverted = [10.0, 10.0, 0.0, 0.0]
    out = box_iou([point, inverted], [point, UNIT, inverted])
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out, 0.0)


def test_box_iou_shapes():
    assert box_iou(np.zeros((0, 4)), np.array([UNIT])).shape == (0, 1)
    assert box_iou(np.array([UNIT]), np.zeros((0, 4))).shape == (1, 0)
    assert box_iou([], []).shape == (0, 0)
    assert box_iou(UNIT, UNIT).shape == (1, 1)  # a single (4,) box counts as one box


def test_paired_iou_matches_pairwise_diagonal():
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 50, (20, 2))
    a = np.concatenate([lo, lo + rng.uniform(1, 10, (20, 2))], 1)
    b = a + rng.normal(0, 3, a.shape)
    np.testing.assert_array_equal(iou(a, b), np.diag(box_iou(a, b)))
    assert iou(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)


def test_giou_known_values():
    # disjoint, same row: union 200, hull [0, 30] x [0, 10] = 300 -> 0 - 100 / 300
    assert giou(UNIT, [20.0, 0.0, 30.0, 10.0]) == pytest.approx(-1 / 3)
    # disjoint diagonally: union 200, hull 30 x 30 = 900 -> -(700 / 900)
    assert giou(UNIT, [20.0, 20.0, 30.0, 30.0]) == pytest.approx(-7 / 9)
    # overlapping half: IoU 1/3, hull equals union -> 1/3
    assert giou(UNIT, [5.0, 0.0, 15.0, 10.0]) == pytest.approx(1 / 3)
    assert giou(UNIT, UNIT) == pytest.approx(1.0)


def test_pairwise_giou_shape_and_scale_invariance():
    a = np.array([UNIT, [0.0, 0.0, 4.0, 4.0]])
    b = np.array([UNIT, [20.0, 0.0, 30.0, 10.0], [2.0, 2.0, 7.0, 7.0]])
    out = pairwise_giou(a, b)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[0], [1.0, -1 / 3, 0.25])
    np.testing.assert_allclose(pairwise_giou(a * [2, 3, 2, 3], b * [2, 3, 2, 3]), out)
    assert np.all((out >= -1) & (out <= 1))
    assert pairwise_giou(np.zeros((0, 4)), b).shape == (0, 3)


def test_nms_keeps_right_indices_in_score_order():
    boxes = np.array(
        [
            [0.0, 0.0, 10.0, 10.0],  # 0: IoU 0.68 with box 1 -> suppressed by it
            [1.0, 1.0, 11.0, 11.0],  # 1: best score, kept first
            [20.0, 20.0, 30.0, 30.0],  # 2: alone, kept
            [25.0, 20.0, 35.0, 30.0],  # 3: IoU 1/3 with box 2: kept at 0.5, dropped at 0.3
            [50.0, 50.0, 60.0, 60.0],  # 4: alone, kept
        ]
    )
    scores = np.array([0.5, 0.9, 0.4, 0.3, 0.7])
    keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.dtype == np.int64
    assert keep.tolist() == [1, 4, 2, 3]
    assert nms(boxes, scores, iou_threshold=0.3).tolist() == [1, 4, 2]
    # suppression is strict: IoU exactly at the threshold keeps the box
    assert nms(boxes[2:4], [1.0, 0.5], iou_threshold=1 / 3).tolist() == [0, 1]


def test_nms_only_kept_boxes_suppress_and_ties_keep_index_order():
    # a -> b overlap, b -> c overlap, a and c disjoint: b is suppressed by a, so c survives
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [6.0, 0.0, 16.0, 10.0], [12.0, 0.0, 22.0, 10.0]])
    assert nms(boxes, [0.9, 0.8, 0.7], iou_threshold=0.2).tolist() == [0, 2]
    assert nms(np.array([UNIT, UNIT]), [0.5, 0.5]).tolist() == [0]


def test_nms_empty():
    keep = nms(np.zeros((0, 4)), np.zeros(0))
    assert keep.tolist() == [] and keep.dtype == np.int64


def test_centres_and_distances():
    a = np.array([UNIT, [2.0, 4.0, 4.0, 8.0]])
    b = np.array([[3.0, 4.0, 9.0, 10.0], [10.0, 10.0, 20.0, 20.0], [-1.0, 0.0, 7.0, 12.0]])
    np.testing.assert_array_equal(centres(a), [[5.0, 5.0], [3.0, 6.0]])
    d = centre_distance(a, b)
    assert d.shape == (2, 3)
    # centres of b: (6, 7), (15, 15), (3, 6)
    np.testing.assert_allclose(d, [[np.sqrt(5), np.sqrt(200), np.sqrt(5)], [np.sqrt(10), np.sqrt(225), 0.0]])
    np.testing.assert_allclose(paired_centre_distance(a, b[:2]), [np.sqrt(5), 15.0])
    # 3-4-5 triangle is exact
    assert paired_centre_distance([UNIT], [[3.0, 4.0, 13.0, 14.0]])[0] == 5.0


def test_centre_shapes():
    assert centres(np.zeros((0, 4))).shape == (0, 2)
    assert centre_distance(np.zeros((0, 4)), np.array([UNIT])).shape == (0, 1)
    assert centre_distance([UNIT], np.zeros((0, 4))).shape == (1, 0)
    assert paired_centre_distance(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)
    with pytest.raises(ValueError, match="equal counts"):
        paired_centre_distance([UNIT], np.zeros((0, 4)))
