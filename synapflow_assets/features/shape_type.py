"""Spine type: the detector's class when it gives one, else rules on the measured shape.

Shape rules (widths and lengths in um, from :mod:`.distance`): head width
``w = 2 * sqrt(head_area / pi)``; spine length ``L = head_to_dendrite + w / 2``;
neck length ``n = max(head_to_dendrite - w / 2, 0)``; ratio ``L / w``. In order:

1. ``stubby``: ``n < STUBBY_MAX_NECK_UM`` (0.3 um; no visible neck);
2. ``filopodium``: ``L / w >= FILOPODIUM_MIN_RATIO`` (4) and ``w < FILOPODIUM_MAX_HEAD_UM`` (0.5 um);
3. ``mushroom``: ``w >= MUSHROOM_MIN_HEAD_UM`` (0.9 um; a large head on a neck);
4. ``thin``: the rest (small head on a neck).

A spine without a measured shape gets a null type (``type_source = "none"``).
"""

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

STUBBY_MAX_NECK_UM = 0.3
FILOPODIUM_MIN_RATIO = 4.0
FILOPODIUM_MAX_HEAD_UM = 0.5
MUSHROOM_MIN_HEAD_UM = 0.9


def type_from_shape(head_width_um: ArrayLike, head_to_dendrite_um: ArrayLike) -> np.ndarray:
    """Spine type per spine from head width and head-to-dendrite distance (um); None where unknown."""
    w = np.asarray(head_width_um, float)
    d = np.asarray(head_to_dendrite_um, float)
    neck = np.maximum(d - w / 2, 0)
    ratio = (d + w / 2) / np.maximum(w, 1e-9)
    out = np.select(
        [
            neck < STUBBY_MAX_NECK_UM,
            (ratio >= FILOPODIUM_MIN_RATIO) & (w < FILOPODIUM_MAX_HEAD_UM),
            w >= MUSHROOM_MIN_HEAD_UM,
        ],
        ["stubby", "filopodium", "mushroom"],
        "thin",
    ).astype(object)
    out[~(np.isfinite(w) & np.isfinite(d))] = None
    return out


def assign_types(detector_type: pl.Series, head_width_um: ArrayLike, head_to_dendrite_um: ArrayLike) -> pl.DataFrame:
    """``type`` and ``type_source`` ("detector", "shape" or "none") per spine.

    Parameters
    ----------
    detector_type : polars.Series of str (nullable)
        The detector's class per spine (null when the model has none).
    head_width_um, head_to_dendrite_um : array_like
        Measured shape per spine, same order.
    """
    shape = pl.Series("shape_type", type_from_shape(head_width_um, head_to_dendrite_um).tolist(), pl.String)
    det = detector_type.cast(pl.String).alias("detector_type")
    return pl.DataFrame([det, shape]).select(
        type=pl.coalesce("detector_type", "shape_type"),
        type_source=pl.when(pl.col("detector_type").is_not_null())
        .then(pl.lit("detector"))
        .when(pl.col("shape_type").is_not_null())
        .then(pl.lit("shape"))
        .otherwise(pl.lit("none")),
    )
