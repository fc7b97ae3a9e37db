"""Duplicate 3D spines of one session: a detector's stacked boxes on one spine, merged into one.

A detector may put two boxes on one spine (shifted by a fraction of its size,
the second a little weaker), and class-agnostic NMS at IoU 0.5 keeps both when
they overlap less. Linked through depth they become two 3D spines at one
place, and across sessions one of them has no partner: one spine turns into an
"eliminated" and a "new" track. Real spine heads do not overlap (they keep a
gap), so on a single plane two spines whose boxes cover most of the smaller one
are one spine. In a z-stack, spines above and below a dendrite do overlap in
x/y on neighbouring layers (in the dense raw-like benchmark 31 of 1888 true
spines met the single-plane rule with the same peak layer); so a stack merges
only a box that lies almost inside the other (``MIN_COVER_STACK``) on mostly
the same layers (``MIN_LAYER_OVERLAP``): 7 of those 1888 true spines, and the
detector's box-in-a-box duplicates of the demo (one of them clipped at the
image edge).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..geometry import box_cover, paired_box_cover
from .candidate_pairs import can_use_tree, overlapping_pairs_within

#: Share of the smaller box that the other must cover for two spines of a single plane to be one.
MIN_COVER = 0.5
#: In a z-stack: the same share, and the overlap of the two layer ranges over their union.
MIN_COVER_STACK = 0.85
MIN_LAYER_OVERLAP = 0.5
#: Up to this many spines the pairs are scored as a dense matrix; above, only the overlapping pairs (k-d tree).
_DENSE_SPINES = 2000


def duplicate_keeper(
    spines: pl.DataFrame,
    *,
    min_cover: float = MIN_COVER,
    min_cover_stack: float = MIN_COVER_STACK,
    min_layer_overlap: float = MIN_LAYER_OVERLAP,
) -> pl.DataFrame:
    """For each spine, the spine it is merged into (itself when it has no duplicate).

    Parameters
    ----------
    spines : polars.DataFrame
        ``spine_id, first_layer, last_layer, xmin, ymin, xmax, ymax, mean_score``.
    min_cover : float
        On a single plane (every spine on layer 0), spines whose boxes intersect over at least this
        share of the smaller box's area are duplicates; chains of duplicates are one spine, kept as its
        highest-scoring member.
    min_cover_stack, min_layer_overlap : float
        In a z-stack, duplicates' median boxes intersect over at least ``min_cover_stack`` of the smaller
        one and their layer ranges overlap by at least ``min_layer_overlap`` of their union.

    Returns
    -------
    polars.DataFrame
        ``spine_id, keeper_id``.
    """
    ids = spines["spine_id"].to_numpy()
    if len(spines) < 2:
        return pl.DataFrame({"spine_id": ids, "keeper_id": ids}, schema={"spine_id": pl.Int64, "keeper_id": pl.Int64})
    box = spines.select("xmin", "ymin", "xmax", "ymax").to_numpy()
    first, last = spines["first_layer"].to_numpy(), spines["last_layer"].to_numpy()
    if len(spines) <= _DENSE_SPINES or not can_use_tree(box) or min(min_cover, min_cover_stack) <= 0:
        i, j = _dense_duplicates(box, first, last, min_cover, min_cover_stack, min_layer_overlap)
    else:
        # only boxes that intersect can cover each other (both thresholds are positive)
        i, j = overlapping_pairs_within(box)
        cover = paired_box_cover(box[i], box[j])
        if int(last.max()) == 0:
            same = cover >= min_cover
        else:
            shared = np.minimum(last[i], last[j]) - np.maximum(first[i], first[j]) + 1
            union = np.maximum(last[i], last[j]) - np.minimum(first[i], first[j]) + 1
            same = (cover >= min_cover_stack) & (np.clip(shared, 0, None) / union >= min_layer_overlap)
        i, j = i[same], j[same]
    n = len(spines)
    _, component = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    score = spines["mean_score"].fill_null(0.0).to_numpy()
    order = np.lexsort((ids, -score, component))  # best score first within each component
    first_of = np.unique(component[order], return_index=True)[1]
    keeper_of_component = ids[order][first_of]
    return pl.DataFrame(
        {"spine_id": ids, "keeper_id": keeper_of_component[component]},
        schema={"spine_id": pl.Int64, "keeper_id": pl.Int64},
    )


def _dense_duplicates(
    box: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    min_cover: float,
    min_cover_stack: float,
    min_layer_overlap: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Duplicate pairs (i < j) from the full (n, n) matrices."""
    cover = box_cover(box, box)
    if int(last.max()) == 0:
        same = cover >= min_cover
    else:
        shared = np.minimum(last[:, None], last[None, :]) - np.maximum(first[:, None], first[None, :]) + 1
        union = np.maximum(last[:, None], last[None, :]) - np.minimum(first[:, None], first[None, :]) + 1
        same = (cover >= min_cover_stack) & (np.clip(shared, 0, None) / union >= min_layer_overlap)
    i, j = np.nonzero(np.triu(same, k=1))
    return i, j


def merge_duplicate_boxes(linked: pl.DataFrame, keepers: pl.DataFrame) -> pl.DataFrame:
    """Linked boxes with each duplicate spine's boxes given to the spine it merges into; where both had a box
    on one layer, the stronger box is kept and the other gets id -1 (part of no spine).

    Parameters
    ----------
    linked : polars.DataFrame
        Boxes with ``id`` (the 3D spine, -1 for none), ``layer``, ``score``, and a grouping column
        ``stack`` when present.
    keepers : polars.DataFrame
        From :func:`duplicate_keeper`.
    """
    if not len(linked) or bool((keepers["spine_id"] == keepers["keeper_id"]).all()):
        return linked
    by = ["stack"] if "stack" in linked.columns else []
    merged = (
        linked.with_row_index("_row")
        .join(keepers, left_on="id", right_on="spine_id", how="left")
        .with_columns(id=pl.coalesce("keeper_id", "id"))
        .drop("keeper_id")
    )
    rank = pl.col("score").fill_null(-1.0).rank("ordinal", descending=True).over([*by, "id", "layer"])
    merged = merged.with_columns(id=pl.when((pl.col("id") >= 0) & (rank > 1)).then(-1).otherwise(pl.col("id")))
    return merged.sort("_row").drop("_row")
