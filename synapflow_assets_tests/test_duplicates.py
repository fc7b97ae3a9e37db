"""Stacked duplicate boxes of one spine become one 3D spine, and so one track."""

import numpy as np
import polars as pl

from synapflow_assets.tracking.box_tables import link_table
from synapflow_assets.tracking.duplicates import duplicate_keeper, merge_duplicate_boxes
from synapflow_assets.tracking.spines import summarize_spines
from synapflow_assets.tracking.time import TimeLinkParams, link_costs

VOXEL = (1.0, 0.03, 0.03)


def boxes(rows):
    return pl.DataFrame(
        rows,
        schema={
            "layer": pl.Int64,
            "xmin": pl.Float64,
            "ymin": pl.Float64,
            "xmax": pl.Float64,
            "ymax": pl.Float64,
            "score": pl.Float64,
        },
        orient="row",
    ).with_columns(stack=pl.lit("s"), type=pl.lit("mushroom"))


def spines_of(table):
    linked = link_table(table)
    keepers = duplicate_keeper(summarize_spines(linked, VOXEL))
    merged = merge_duplicate_boxes(linked, keepers)
    return summarize_spines(merged, VOXEL), merged


def test_a_stacked_duplicate_on_a_single_plane_is_one_spine():
    # one spine with a second box shifted by 25% of its size, a neighbour 60 px away
    table = boxes([(0, 100, 100, 140, 140, 0.8), (0, 110, 105, 150, 145, 0.5), (0, 200, 100, 240, 140, 0.7)])
    spines, merged = spines_of(table)
    assert len(spines) == 2
    kept = spines.sort("xmin").row(0, named=True)
    assert kept["mean_score"] == 0.8 and kept["xmin"] == 100
    assert merged["id"].to_list().count(-1) == 1 and len(merged) == 3  # the weaker box is kept, in no spine


def test_neighbouring_spines_that_touch_stay_two():
    table = boxes([(0, 100, 100, 140, 140, 0.8), (0, 130, 100, 170, 140, 0.7)])  # 25% of the box overlaps
    spines, _ = spines_of(table)
    assert len(spines) == 2


def test_a_duplicate_does_not_become_two_tracks():
    earlier = boxes([(0, 100, 100, 140, 140, 0.8), (0, 108, 106, 148, 146, 0.6)])
    later = boxes([(0, 103, 101, 143, 141, 0.7)])
    (a, _), (b, _) = spines_of(earlier), spines_of(later)
    links = link_costs(a.with_columns(in_view=pl.lit(True)), b, TimeLinkParams())
    assert len(a) == 1 and len(links) == 1  # no second earlier spine left to be called eliminated


def test_keeper_is_vectorised_over_many_spines():
    x = np.arange(400) * 60.0
    rows = [(0, xi, 0, xi + 40, 40, 0.9) for xi in x] + [(0, xi + 8, 4, xi + 48, 44, 0.4) for xi in x[::2]]
    spines, merged = spines_of(boxes(rows))
    assert len(spines) == 400 and (merged["id"] == -1).sum() == 200


def test_in_a_stack_spines_above_each_other_stay_two_and_coinciding_boxes_merge():
    above_below = boxes(
        [
            (2, 100, 100, 140, 140, 0.8),
            (3, 100, 100, 140, 140, 0.8),
            (4, 104, 102, 144, 142, 0.7),
            (5, 104, 102, 144, 142, 0.7),
        ]
    )
    linked = link_table(above_below)
    assert len(summarize_spines(linked, VOXEL)) == 1  # depth linking joins them: nothing to merge
    two = pl.DataFrame(
        {
            "spine_id": [1, 2, 3],
            "first_layer": [2, 4, 8],
            "last_layer": [4, 6, 10],
            "peak_layer": [3, 5, 9],
            "xmin": [100.0, 101.0, 300.0],
            "ymin": [100.0, 101.0, 100.0],
            "xmax": [140.0, 141.0, 340.0],
            "ymax": [140.0, 141.0, 140.0],
            "mean_score": [0.8, 0.7, 0.9],
        }
    )
    assert duplicate_keeper(two)["keeper_id"].to_list() == [1, 2, 3]  # one above the other: two spines
    same = two.with_columns(
        first_layer=pl.Series([2, 2, 8]), last_layer=pl.Series([4, 4, 10]), peak_layer=pl.Series([3, 3, 9])
    )
    assert duplicate_keeper(same)["keeper_id"].to_list() == [1, 1, 3]
