"""Scoring of detection and tracking quality (plain Python, no dagster).

"Frames" are the layers of one stack (depth tracking: 2D boxes linked into
3D spines) or the imaging sessions (time tracking: 3D spines linked across
days); "objects" are boxes that carry an ``id``.

Public API
----------
box_iou
    Vectorised pairwise IoU of two box arrays (from :mod:`synapflow_assets.geometry`).
tracking_scores
    MOTA / MOTP / IDF1 / ID switches and HOTA / DetA / AssA (``trackeval``)
    of a predicted box table against the truth.
precision_recall_f1
    Precision, recall and F1 from match counts, with the package's one
    convention for empty predictions or truth (NaN when undefined).
spine_f1_3d
    The earlier lab's 3D spine detection score (x/y box overlap plus z overlap).
spines_from_boxes
    Collapse a per-layer box table with ids into one row per 3D spine.
"""

from synapflow_assets.evaluation.ratios import precision_recall_f1
from synapflow_assets.evaluation.spine_matching import spine_f1_3d, spines_from_boxes
from synapflow_assets.geometry import box_iou

__all__ = ["box_iou", "precision_recall_f1", "spine_f1_3d", "spines_from_boxes", "tracking_scores"]


def __getattr__(name: str):
    # trackeval is in the `bench` extra: the detector's training imports `ratios` without it
    if name == "tracking_scores":
        from synapflow_assets.evaluation.tracking_metrics import tracking_scores

        return tracking_scores
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
