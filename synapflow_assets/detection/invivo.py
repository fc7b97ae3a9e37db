"""The two raw in-vivo layers (``real_layers``) against an earlier public detector's boxes.

Not ground truth: a check that the detector finds, at default settings, the
spines another detector finds on raw acquisitions (noise, background, axons),
without drawing many more boxes. A peer box counts as found when a box of ours
overlaps it with IoU >= ``INVIVO_IOU``, one to one (greedy by score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..setting_sections import DEFAULT_SCORE_THRESHOLD
from .evaluation import detection_scores
from .real_data import shared_data_root

INVIVO_IOU = 0.3
#: Targets of issue [2/7]: share of the peer's boxes found, and most boxes per peer box.
TARGET_FOUND = 0.8
TARGET_COUNT_RATIO = 1.5


@dataclass(frozen=True)
class InVivoLayer:
    name: str
    image: np.ndarray
    peer: pl.DataFrame


def invivo_layers(folder: Path | None = None) -> list[InVivoLayer]:
    """The in-vivo layers and their peer boxes (empty list when the folder is absent)."""
    from PIL import Image

    from ..imaging.colour import pil_to_grey

    folder = Path(folder) if folder is not None else shared_data_root() / "real_layers"
    layers = []
    for csv in sorted(folder.glob("*_peer_predictions.csv")):
        png = folder / (csv.name.removesuffix("_peer_predictions.csv") + ".png")
        if not png.is_file():
            continue
        with Image.open(png) as im:
            image, _ = pil_to_grey(im)
        peer = pl.read_csv(csv).select(
            pl.lit(png.stem).alias("image"), *[pl.col(c).cast(pl.Float64) for c in ("xmin", "ymin", "xmax", "ymax")]
        )
        layers.append(InVivoLayer(png.stem, image, peer))
    return layers


def invivo_scores(
    detector,
    layers: list[InVivoLayer],
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    pixel_size_um: float | None = None,
) -> dict:
    """How many of the peer's boxes the detector finds at ``score_threshold``, and how many boxes it draws.

    Parameters
    ----------
    detector : SpineDetector
    layers : list of InVivoLayer
    score_threshold : float
    pixel_size_um : float, optional
        None: estimated per layer (the files carry no pixel size).

    Returns
    -------
    dict
        ``found`` (share of peer boxes matched), ``count_ratio`` (our boxes / peer boxes),
        ``n_peer``, ``n_predicted``, ``matched``, ``ap50_vs_peer`` (COCO AP50 taking the peer as truth),
        ``per_layer`` ({name: {found, n_peer, n_predicted}}), ``boxes`` ({name: DataFrame}).
    """
    if not layers:
        return {}
    per_layer, frames = {}, []
    for layer in layers:
        boxes = detector.detect_layer(layer.image, score_threshold=0.05, pixel_size_um=pixel_size_um)
        frames.append(boxes.with_columns(pl.lit(layer.name).alias("image")))
    predicted = pl.concat(frames)
    truth = pl.concat([layer.peer for layer in layers])
    kept = predicted.filter(pl.col("score") >= score_threshold)
    total = detection_scores(truth, kept, per_type=False, iou_threshold=INVIVO_IOU)
    for layer in layers:
        one = detection_scores(
            layer.peer, kept.filter(pl.col("image") == layer.name), per_type=False, iou_threshold=INVIVO_IOU
        )
        per_layer[layer.name] = {"found": one["recall"], "n_peer": one["n_truth"], "n_predicted": one["n_predicted"]}
    ap = detection_scores(truth, predicted, per_type=False)["ap50"]
    n_peer = total["n_truth"]
    return {
        "found": total["recall"],
        "count_ratio": total["n_predicted"] / n_peer if n_peer else math.nan,
        "n_peer": n_peer,
        "n_predicted": total["n_predicted"],
        "matched": total["tp"],
        "ap50_vs_peer": ap,
        "per_layer": per_layer,
        "boxes": {layer.name: kept.filter(pl.col("image") == layer.name) for layer in layers},
    }
