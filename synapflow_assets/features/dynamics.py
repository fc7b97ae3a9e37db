"""Spine dynamics per animal and session from time-tracked spines (polars, no loops).

Definitions (t = ``session_index``, "in view" = status ``present`` or ``new``):

- ``n_in_view``: spines in view at t.
- ``n_reference``: the denominator of the rates - spines in view at t-1 that
  are not ``out_of_view`` at t (a spine that left the field cannot be judged
  kept or lost, so it is excluded from numerator and denominator).
- ``gained``: spines ``new`` at t; ``lost``: spines ``eliminated`` at t that
  were in view at t-1.
- ``formation_rate = gained / n_reference``, ``elimination_rate = lost / n_reference``,
  ``turnover = (gained + lost) / (2 * n_reference)``.
- ``survival_fraction``: of the spines in view at session 0, the share
  ``present`` at t, among those not ``out_of_view`` at t (eliminated spines have
  no row after their elimination and count as not surviving).
- ``new_persistent``: spines ``new`` at t-1 and ``present`` at t;
  ``new_transient``: ``new`` at t-1 and ``eliminated`` at t.
- ``mean_size_change``: mean of ``size_t / size_{t-1} - 1`` over spines
  ``present`` at t and in view at t-1 with both sizes (null without a
  ``size`` column).

Session 0 gets ``n_in_view`` and ``survival_fraction = 1``; its rates are null.
Status ``unconfirmed`` (a weak one-session detection without support) counts
nowhere.

Each rate has a 95% interval (``formation_low`` / ``formation_high``, ...):
percentiles of a bootstrap over the animal's tracks in which, in each
replicate, every row with a ``confidence`` keeps its status with that
probability and flips otherwise (an elimination becomes a kept spine, a
formation is dropped, a spine kept present on image evidence becomes an
elimination). It covers both the sampling of spines and the doubt about each
call.
"""

import warnings
import zlib
from typing import cast

import numpy as np
import polars as pl

IN_VIEW = ("present", "new")
DYNAMICS_COLUMNS = [
    "animal",
    "session",
    "session_index",
    "n_in_view",
    "n_reference",
    "gained",
    "lost",
    "formation_rate",
    "elimination_rate",
    "turnover",
    "n_survival_reference",
    "n_surviving",
    "survival_fraction",
    "new_persistent",
    "new_transient",
    "mean_size_change",
    "formation_low",
    "formation_high",
    "elimination_low",
    "elimination_high",
    "survival_low",
    "survival_high",
]
INTERVAL_COLUMNS = DYNAMICS_COLUMNS[-6:]
BOOTSTRAP_REPLICATES = 1000


def spine_dynamics(tracks: pl.DataFrame, *, replicates: int = BOOTSTRAP_REPLICATES) -> pl.DataFrame:
    """Turnover, survival and size change per (animal, session).

    Parameters
    ----------
    tracks : polars.DataFrame
        One row per (session, track): ``animal``, ``session``,
        ``session_index``, ``track_id``, ``status`` in {present, new,
        eliminated, out_of_view, unconfirmed}, optional ``size``,
        ``confidence`` (of the row's status; null: certain).
    replicates : int
        Bootstrap replicates of the intervals (seeded by the animal's name, so
        a rerun gives the same numbers).

    Returns
    -------
    polars.DataFrame
        Columns :data:`DYNAMICS_COLUMNS`, one row per (animal, session), sorted.
    """
    key = ["animal", "track_id"]
    size = pl.col("size") if "size" in tracks.columns else pl.lit(None, pl.Float64)
    t = tracks.select("animal", "session", "session_index", "track_id", "status", size.cast(pl.Float64).alias("size"))
    prev = t.select(
        *key,
        (pl.col("session_index") + 1).alias("session_index"),
        pl.col("status").alias("prev_status"),
        pl.col("size").alias("prev_size"),
    )
    first = t.filter(pl.col("session_index") == 0, pl.col("status").is_in(IN_VIEW)).select(*key, first=pl.lit(True))
    j = t.join(prev, on=[*key, "session_index"], how="left").join(first, on=key, how="left")
    in_prev = pl.col("prev_status").is_in(IN_VIEW).fill_null(False)
    st = pl.col("status")
    per = j.group_by("animal", "session", "session_index").agg(
        n_in_view=st.is_in(IN_VIEW).sum(),
        n_reference=(in_prev & (st != "out_of_view")).sum(),
        gained=(st == "new").sum(),
        lost=(in_prev & (st == "eliminated")).sum(),
        n_first_out=(pl.col("first").fill_null(False) & (st == "out_of_view")).sum(),
        n_surviving=(pl.col("first").fill_null(False) & (st == "present")).sum(),
        new_persistent=((pl.col("prev_status") == "new") & (st == "present")).sum(),
        new_transient=((pl.col("prev_status") == "new") & (st == "eliminated")).sum(),
        mean_size_change=(pl.col("size") / pl.col("prev_size") - 1).filter(in_prev & (st == "present")).mean(),
    )
    n_first = first.group_by("animal").agg(n_first=pl.len())
    out = per.join(n_first, on="animal", how="left").with_columns(
        n_survival_reference=pl.col("n_first").fill_null(0) - pl.col("n_first_out")
    )
    ref = pl.col("n_reference").cast(pl.Float64)
    later = pl.col("session_index") > 0
    out = out.with_columns(
        formation_rate=pl.when(later & (ref > 0)).then(pl.col("gained") / ref),
        elimination_rate=pl.when(later & (ref > 0)).then(pl.col("lost") / ref),
        turnover=pl.when(later & (ref > 0)).then((pl.col("gained") + pl.col("lost")) / (2 * ref)),
        survival_fraction=pl.when(pl.col("n_survival_reference") > 0).then(
            pl.col("n_surviving") / pl.col("n_survival_reference").cast(pl.Float64)
        ),
    ).with_columns(
        [
            pl.when(later).then(pl.col(c)).alias(c)
            for c in ("n_reference", "gained", "lost", "new_persistent", "new_transient", "mean_size_change")
        ]
    )
    ints = [
        "n_in_view",
        "n_reference",
        "gained",
        "lost",
        "n_survival_reference",
        "n_surviving",
        "new_persistent",
        "new_transient",
    ]
    out = out.with_columns([pl.col(c).cast(pl.Int64) for c in ints]).with_columns(
        pl.col("mean_size_change").cast(pl.Float64)
    )
    bounds = (
        pl.concat([rate_intervals(group, replicates) for _, group in tracks.group_by("animal", maintain_order=True)])
        if len(tracks)
        else pl.DataFrame(
            schema={"animal": pl.String, "session_index": pl.Int64, **{c: pl.Float64 for c in INTERVAL_COLUMNS}}
        )
    )
    return (
        out.join(bounds, on=["animal", "session_index"], how="left")
        .select(DYNAMICS_COLUMNS)
        .sort("animal", "session_index")
    )


def rate_intervals(tracks: pl.DataFrame, replicates: int = BOOTSTRAP_REPLICATES) -> pl.DataFrame:
    """95% intervals of formation, elimination and survival per session of one animal (see the module).

    Returns
    -------
    polars.DataFrame
        ``animal, session_index`` and :data:`INTERVAL_COLUMNS` (null for session 0's rates).
    """
    animal = tracks["animal"][0]
    n_sessions = int(cast(int, tracks["session_index"].max())) + 1
    ids, k = np.unique(tracks["track_id"].to_numpy(), return_inverse=True)
    t = tracks["session_index"].to_numpy()
    codes = {"present": 1, "new": 2, "eliminated": 3, "out_of_view": 4}
    status = np.zeros((len(ids), n_sessions), np.int8)
    status[k, t] = tracks["status"].replace_strict(codes, default=0, return_dtype=pl.Int8).to_numpy()
    doubt = np.zeros((len(ids), n_sessions), np.float32)
    if "confidence" in tracks.columns:
        doubt[k, t] = 1 - tracks["confidence"].fill_null(1.0).clip(0, 1).to_numpy()
    in_view = (status == 1) | (status == 2)
    in_prev = np.zeros_like(in_view)
    in_prev[:, 1:] = in_view[:, :-1]
    first = in_view[:, :1]

    rng = np.random.default_rng(zlib.crc32(str(animal).encode()))
    weight = rng.multinomial(len(ids), np.full(len(ids), 1 / len(ids)), size=replicates).astype(np.float32)
    flip = rng.random((replicates, *status.shape), dtype=np.float32) < doubt
    eliminated, new, present = status == 3, status == 2, status == 1
    lost = in_prev & ((eliminated & ~flip) | (present & flip))
    gained = new & ~flip
    surviving = first & ((present & ~flip) | (eliminated & flip))
    reference = np.broadcast_to(in_prev & (status != 4), status.shape)
    survival_reference = np.broadcast_to(first & (status != 4), status.shape)

    def share(numerator, denominator):
        num = np.einsum("bk,bks->bs", weight, numerator.astype(np.float32))
        den = np.einsum("bk,ks->bs", weight, denominator.astype(np.float32))
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a session with no reference in any replicate
            rate = np.where(den > 0, num / den, np.nan)
            return (
                np.nanpercentile(rate, [2.5, 97.5], axis=0).astype(np.float64)
                if replicates
                else np.full((2, n_sessions), np.nan)
            )

    formation, elimination, survival = (
        share(gained, reference),
        share(lost, reference),
        share(surviving, survival_reference),
    )
    later = np.arange(n_sessions) > 0
    columns = {
        "formation_low": formation[0],
        "formation_high": formation[1],
        "elimination_low": elimination[0],
        "elimination_high": elimination[1],
        "survival_low": survival[0],
        "survival_high": survival[1],
    }
    return pl.DataFrame(
        {
            "animal": [animal] * n_sessions,
            "session_index": np.arange(n_sessions),
            **{c: np.where(later | c.startswith("survival"), v, np.nan) for c, v in columns.items()},
        }
    ).with_columns([pl.col(c).fill_nan(None) for c in INTERVAL_COLUMNS])
