"""Scoring time tracking against simulated ground truth: identities and statuses."""

from typing import cast

import polars as pl

from .tracking_metrics import tracking_scores


def identity_scores(truth_spines: pl.DataFrame, tracks: pl.DataFrame, spines: pl.DataFrame) -> dict:
    """MOTA / IDF1 / HOTA with sessions as frames and 3D spines (median boxes) as objects.

    Parameters
    ----------
    truth_spines : polars.DataFrame
        ``session_index, spine_id`` (the true persistent id), ``xmin, ymin, xmax, ymax``.
    tracks : polars.DataFrame
        ``session_index, track_id, spine_id`` from :func:`tracking.tracks.build_tracks`.
    spines : polars.DataFrame
        ``session_index, spine_id, xmin, ymin, xmax, ymax`` of the tracked 3D spines.
    """
    predicted = tracks.filter(pl.col("spine_id").is_not_null()).join(
        spines.select("session_index", "spine_id", "xmin", "ymin", "xmax", "ymax"), on=["session_index", "spine_id"]
    )
    return tracking_scores(
        truth_spines.select(frame="session_index", id="spine_id", xmin="xmin", ymin="ymin", xmax="xmax", ymax="ymax"),
        predicted.select(frame="session_index", id="track_id", xmin="xmin", ymin="ymin", xmax="xmax", ymax="ymax"),
        frame="frame",
    )


def status_accuracy(
    truth_status: pl.DataFrame, observed: pl.DataFrame, tracks: pl.DataFrame
) -> tuple[float, pl.DataFrame]:
    """Share of true (spine, session) statuses that the tracks reproduce, for tracks built on true spines.

    Parameters
    ----------
    truth_status : polars.DataFrame
        ``session_index, spine_id, status`` (present / new / eliminated / out_of_view).
    observed : polars.DataFrame
        ``session_index, spine_id`` of the spines given to the tracker (those
        with boxes); a spine is scored after the first session it was
        observed (at it too if it is new there), and ``present`` / ``new``
        rows only where it was observed.
    tracks : polars.DataFrame
        Tracks built on those spines (their ``spine_id`` is the true id).

    Returns
    -------
    accuracy : float
        Over sessions after the first.
    confusion : polars.DataFrame
        ``status, ours, count``.
    """
    last_seen = (
        tracks.sort("session_index")
        .with_columns(true_id=pl.col("spine_id").forward_fill().over("track_id"))
        .sort("session_index", "detected", descending=[False, True])
        .select("session_index", spine_id="true_id", ours="status")
        .unique(["session_index", "spine_id"], keep="first")
    )
    first_seen = observed.group_by("spine_id").agg(first=pl.col("session_index").min())
    scored = (
        truth_status.filter(pl.col("session_index") > 0)
        .join(first_seen, on="spine_id")
        .filter((pl.col("session_index") > pl.col("first")) | (pl.col("status") == "new"))
        .join(observed.with_columns(seen=pl.lit(True)), on=["session_index", "spine_id"], how="left")
        .filter(~pl.col("status").is_in(["present", "new"]) | pl.col("seen").fill_null(False))
        .join(last_seen, on=["session_index", "spine_id"], how="left")
        .with_columns(ours=pl.col("ours").fill_null("none"))
    )
    confusion = scored.group_by("status", "ours").agg(count=pl.len()).sort("status", "ours")
    return float(cast(float, (scored["status"] == scored["ours"]).mean())) if len(scored) else float("nan"), confusion
