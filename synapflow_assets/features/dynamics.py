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
"""
import polars as pl

IN_VIEW = ("present", "new")
DYNAMICS_COLUMNS = ["animal", "session", "session_index", "n_in_view", "n_reference", "gained", "lost",
                    "formation_rate", "elimination_rate", "turnover", "n_survival_reference", "n_surviving",
                    "survival_fraction", "new_persistent", "new_transient", "mean_size_change"]


def spine_dynamics(tracks: pl.DataFrame) -> pl.DataFrame:
    """Turnover, survival and size change per (animal, session).

    Parameters
    ----------
    tracks : polars.DataFrame
        One row per (session, track): ``animal``, ``session``,
        ``session_index``, ``track_id``, ``status`` in {present, new,
        eliminated, out_of_view}, optional ``size``.

    Returns
    -------
    polars.DataFrame
        Columns :data:`DYNAMICS_COLUMNS`, one row per (animal, session), sorted.
    """
    key = ["animal", "track_id"]
    size = pl.col("size") if "size" in tracks.columns else pl.lit(None, pl.Float64)
    t = tracks.select("animal", "session", "session_index", "track_id", "status", size.cast(pl.Float64).alias("size"))
    prev = t.select(*key, (pl.col("session_index") + 1).alias("session_index"),
                    pl.col("status").alias("prev_status"), pl.col("size").alias("prev_size"))
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
        n_survival_reference=pl.col("n_first").fill_null(0) - pl.col("n_first_out"))
    ref = pl.col("n_reference").cast(pl.Float64)
    later = pl.col("session_index") > 0
    out = out.with_columns(
        formation_rate=pl.when(later & (ref > 0)).then(pl.col("gained") / ref),
        elimination_rate=pl.when(later & (ref > 0)).then(pl.col("lost") / ref),
        turnover=pl.when(later & (ref > 0)).then((pl.col("gained") + pl.col("lost")) / (2 * ref)),
        survival_fraction=pl.when(pl.col("n_survival_reference") > 0)
        .then(pl.col("n_surviving") / pl.col("n_survival_reference").cast(pl.Float64)),
    ).with_columns(
        [pl.when(later).then(pl.col(c)).alias(c) for c in ("n_reference", "gained", "lost", "new_persistent",
                                                            "new_transient", "mean_size_change")])
    ints = ["n_in_view", "n_reference", "gained", "lost", "n_survival_reference", "n_surviving", "new_persistent",
            "new_transient"]
    return (out.with_columns([pl.col(c).cast(pl.Int64) for c in ints])
            .with_columns(pl.col("mean_size_change").cast(pl.Float64))
            .select(DYNAMICS_COLUMNS).sort("animal", "session_index"))
