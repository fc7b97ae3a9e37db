"""The change of each tracked spine's size, with a 95% interval from the measurement noise (polars, no loops).

Choice: the change is that between the spine's **first and last session in view** (status ``present`` or
``new`` with a positive size), as a fraction of the first: ``size_change = size_last / size_first - 1``
(``+1.0``: doubled, ``0``: unchanged, ``-0.5``: halved; unit 1). This is the number a study of spine growth
reports (baseline against the end of the experiment); a change per consecutive pair of sessions is the
trajectory drawn in the report (``relative_sizes``), not a second estimate.

The interval comes from the noise of one measurement of the size in one session: an unchanged spine
measured in several sessions varies with a coefficient of variation ``cv`` (``bench/features.py`` on the
simulator, persistent unchanged spines with brightness and focus changes: median CV of ``head_volume_um3``
7.6%, :data:`HEAD_VOLUME_CV`). On the log scale each measurement has a standard deviation
``s = sqrt(ln(1 + cv^2))``, the log ratio of two sessions ``sqrt(2) * s``, so the 95% interval is
``exp(ln(size_last / size_first) -/+ 1.96 * sqrt(2) * s) - 1``: it always contains the change, and a change
whose interval excludes 0 is larger than the noise of imaging. The interval covers the measurement only,
not the biological variation between spines.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import polars as pl

from .dynamics import IN_VIEW

HEAD_VOLUME_CV = 0.076
"""Coefficient of variation of ``head_volume_um3`` of a persistent unchanged spine across sessions (median
over spines, ``bench/features.py``, 3 animals x 4 sessions, raw-like acquisition)."""
SIZE_CHANGE_COLUMNS = {
    "track_id": ("", "track of the spine"),
    "first_session": ("", "first session with the spine in view and a size"),
    "last_session": ("", "last session with the spine in view and a size"),
    "n_sessions": ("sessions", "sessions with the spine in view and a size"),
    "size_first": ("as the size column", "size in the first session"),
    "size_last": ("as the size column", "size in the last session"),
    "size_change": ("1", "size_last / size_first - 1 (+1.0 = doubled)"),
    "size_change_low": ("1", "lower end of its 95% interval from the measurement noise"),
    "size_change_high": ("1", "upper end of its 95% interval from the measurement noise"),
}


def log_ratio_half_width(*, cv: float = HEAD_VOLUME_CV, level: float = 0.95) -> float:
    """Half width, on the log scale, of the interval of the ratio of two sizes each measured with ``cv``."""
    if not (cv >= 0 and 0 < level < 1):
        raise ValueError(f"cv must be >= 0 and level in (0, 1), not cv={cv}, level={level}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return z * math.sqrt(2.0) * math.sqrt(math.log1p(cv * cv))


def _sized(tracks: pl.DataFrame, column: str) -> pl.DataFrame:
    if column not in tracks.columns:
        raise ValueError(f"tracks have no size column {column!r}")
    keys = ["animal", "track_id"] if "animal" in tracks.columns else ["track_id"]
    seen = pl.col("status").is_in(IN_VIEW) & pl.col(column).is_finite() & (pl.col(column) > 0)
    return tracks.filter(seen).select(*keys, "session", "session_index", pl.col(column).cast(pl.Float64).alias("v"))


def size_changes(
    tracks: pl.DataFrame, *, column: str = "head_volume_um3", cv: float = HEAD_VOLUME_CV, level: float = 0.95
) -> pl.DataFrame:
    """The size change of every track in view with a size in at least two sessions.

    Parameters
    ----------
    tracks : polars.DataFrame
        Track rows with ``track_id``, ``session``, ``session_index``, ``status`` and the size ``column`` (null
        where no spine was measured); ``animal`` too when several animals are given.
    column : str
        The size to compare (default the head volume in um^3; any positive size works).
    cv : float
        Coefficient of variation of one measurement of ``column`` (default :data:`HEAD_VOLUME_CV`).
    level : float
        Coverage of the interval.

    Returns
    -------
    polars.DataFrame
        ``[animal,] track_id, first_session, last_session, n_sessions, size_first, size_last, size_change,
        size_change_low, size_change_high`` (units in :data:`SIZE_CHANGE_COLUMNS`), sorted by track.
    """
    half = log_ratio_half_width(cv=cv, level=level)
    sized = _sized(tracks, column)
    keys = [c for c in ("animal", "track_id") if c in sized.columns]
    ends = (
        sized.sort(*keys, "session_index")
        .group_by(keys, maintain_order=True)
        .agg(
            first_session=pl.col("session").first(),
            last_session=pl.col("session").last(),
            n_sessions=pl.col("session_index").n_unique().cast(pl.Int64),
            size_first=pl.col("v").first(),
            size_last=pl.col("v").last(),
        )
        .filter(pl.col("n_sessions") >= 2)
    )
    log_ratio = (pl.col("size_last") / pl.col("size_first")).log()
    return ends.with_columns(
        size_change=log_ratio.exp() - 1,
        size_change_low=(log_ratio - half).exp() - 1,
        size_change_high=(log_ratio + half).exp() - 1,
    )


def relative_sizes(
    tracks: pl.DataFrame, *, column: str = "head_volume_um3", cv: float = HEAD_VOLUME_CV, level: float = 0.95
) -> pl.DataFrame:
    """Each persistent spine's size per session relative to its first session, with the 95% interval of the
    ratio from the measurement noise (persistent: in view with a size in every session of the tracks).

    Returns
    -------
    polars.DataFrame
        ``[animal,] track_id, session, session_index, relative, relative_low, relative_high`` (unit 1; the
        first session is 1 with the interval of a second measurement of an unchanged spine).
    """
    half = log_ratio_half_width(cv=cv, level=level)
    sized = _sized(tracks, column)
    keys = [c for c in ("animal", "track_id") if c in sized.columns]
    group = keys[:-1]
    n_sessions = (
        tracks.group_by(group).agg(n_all=pl.col("session_index").n_unique())
        if group
        else pl.DataFrame({"n_all": [tracks["session_index"].n_unique()]})
    )
    counted = sized.with_columns(n=pl.col("session_index").n_unique().over(keys))
    kept = (counted.join(n_sessions, on=group) if group else counted.join(n_sessions, how="cross")).filter(
        pl.col("n") == pl.col("n_all")
    )
    ratio = pl.col("v") / pl.col("v").sort_by("session_index").first().over(keys)
    return (
        kept.with_columns(relative=ratio)
        .with_columns(
            relative_low=pl.col("relative") * math.exp(-half), relative_high=pl.col("relative") * math.exp(half)
        )
        .select(*keys, "session", "session_index", "relative", "relative_low", "relative_high")
        .sort(*keys, "session_index")
    )
