"""A person's corrections of track statuses, applied to (re)computed tracks by place, not by id.

Track ids may change when a partition is recomputed (another detector, other
settings), so a correction names its session and the place of the spine (um);
it applies to the track row of that session nearest to that place, within
``tolerance_um``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

STATUSES = ("present", "new", "eliminated", "out_of_view", "unconfirmed")
"""Statuses a correction may set (``unconfirmed``: not a spine)."""
CORRECTION_SCHEMA: dict[Any, Any] = {
    "animal": pl.String,
    "session": pl.String,
    "track_id": pl.Int64,
    "x_um": pl.Float64,
    "y_um": pl.Float64,
    "z_um": pl.Float64,
    "computed_status": pl.String,
    "status": pl.String,
    "corrected_by": pl.String,
    "corrected_at": pl.Datetime("us", "UTC"),
    "note": pl.String,
}
TOLERANCE_UM = 1.0


def apply_corrections(
    tracks: pl.DataFrame, corrections: pl.DataFrame, *, tolerance_um: float = TOLERANCE_UM
) -> pl.DataFrame:
    """Tracks with each correction applied to the nearest row of its session within ``tolerance_um``.

    Parameters
    ----------
    tracks : polars.DataFrame
        ``session, track_id, status, x_um, y_um, z_um, confidence`` (and more).
    corrections : polars.DataFrame
        :data:`CORRECTION_SCHEMA`; the latest correction of a place wins.

    Returns
    -------
    polars.DataFrame
        ``tracks`` with ``computed_status`` (the status before correction),
        ``corrected_by`` and ``corrected_at`` set on corrected rows, whose
        ``status`` is the corrected one and ``confidence`` 1.
    """
    out = tracks.with_columns(
        computed_status=pl.col("status"),
        corrected_by=pl.lit(None, pl.String),
        corrected_at=pl.lit(None, pl.Datetime("us", "UTC")),
    )
    if not len(corrections) or not len(tracks):
        return out
    rows = out.select("session", "track_id", "x_um", "y_um", "z_um").with_row_index("row")
    pairs = (
        corrections.sort("corrected_at")
        .with_row_index("correction")
        .join(rows, on="session", suffix="_track")
        .with_columns(
            distance=(
                (pl.col("x_um") - pl.col("x_um_track")) ** 2
                + (pl.col("y_um") - pl.col("y_um_track")) ** 2
                + (pl.col("z_um") - pl.col("z_um_track")) ** 2
            ).sqrt()
        )
        .filter(pl.col("distance") <= tolerance_um)
        .sort("distance")
        .unique("correction", keep="first")
        .sort("correction")
        .unique("row", keep="last")
    )
    found = pairs.select("row", new_status="status", by="corrected_by", at="corrected_at")
    return (
        out.with_row_index("row")
        .join(found, on="row", how="left")
        .with_columns(
            status=pl.coalesce("new_status", "status"),
            confidence=pl.when(pl.col("new_status").is_not_null()).then(1.0).otherwise(pl.col("confidence")),
            corrected_by=pl.col("by"),
            corrected_at=pl.col("at"),
        )
        .drop("row", "new_status", "by", "at")
    )
