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

Each rate has a 95% interval (``formation_low`` / ``formation_high``, ...) computed from the same
numerator and denominator as the rate, so that the rate always lies inside it:

- elimination and survival are shares of their reference: a Wilson score
  interval of ``lost / n_reference`` and ``n_surviving / n_survival_reference``;
- formation counts new spines per spine of the reference (it can exceed 1):
  the score interval of a Poisson count, ``gained / n_reference``.

The doubt about each call widens the interval towards what is doubted: every
row with a ``confidence`` is wrong with probability ``1 - confidence`` (an
elimination is a kept spine, a formation is no spine, a spine kept present on
image evidence is an elimination). The lower bound is the interval's lower end
for the count less the expected number of wrong calls among the counted ones,
the upper bound its upper end for the count plus the expected number of wrong
calls among the uncounted ones, and the variance of the wrong calls widens both
(certain calls give the plain score interval). Both ends move away from the
rate, never across it. Session 0's survival is 1 by definition: its interval
is the point.
"""

from statistics import NormalDist

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
Z95 = NormalDist().inv_cdf(0.975)
"""The standard normal quantile of a two-sided 95% interval."""


def spine_dynamics(tracks: pl.DataFrame) -> pl.DataFrame:
    """Turnover, survival and size change per (animal, session), each rate with its 95% interval.

    Parameters
    ----------
    tracks : polars.DataFrame
        One row per (session, track): ``animal``, ``session``,
        ``session_index``, ``track_id``, ``status`` in {present, new,
        eliminated, out_of_view, unconfirmed}, optional ``size``,
        ``confidence`` (of the row's status; null: certain).

    Returns
    -------
    polars.DataFrame
        Columns :data:`DYNAMICS_COLUMNS`, one row per (animal, session), sorted.
    """
    key = ["animal", "track_id"]
    size = pl.col("size") if "size" in tracks.columns else pl.lit(None, pl.Float64)
    confidence = pl.col("confidence") if "confidence" in tracks.columns else pl.lit(None, pl.Float64)
    t = tracks.select(
        "animal",
        "session",
        "session_index",
        "track_id",
        "status",
        size.cast(pl.Float64).alias("size"),
        doubt=(1 - confidence.cast(pl.Float64).fill_nan(None).clip(0, 1)).fill_null(0.0),
    )
    prev = t.select(
        *key,
        (pl.col("session_index") + 1).alias("session_index"),
        pl.col("status").alias("prev_status"),
        pl.col("size").alias("prev_size"),
    )
    first = t.filter(pl.col("session_index") == 0, pl.col("status").is_in(IN_VIEW)).select(*key, first=pl.lit(True))
    j = t.join(prev, on=[*key, "session_index"], how="left").join(first, on=key, how="left")
    in_prev = pl.col("prev_status").is_in(IN_VIEW).fill_null(False)
    in_first = pl.col("first").fill_null(False)
    st = pl.col("status")
    d = pl.col("doubt")
    lost, kept = in_prev & (st == "eliminated"), in_prev & (st == "present")
    surviving, gone = in_first & (st == "present"), in_first & (st == "eliminated")
    per = j.group_by("animal", "session", "session_index").agg(
        n_in_view=st.is_in(IN_VIEW).sum(),
        n_reference=(in_prev & (st != "out_of_view")).sum(),
        gained=(st == "new").sum(),
        lost=lost.sum(),
        n_first_out=(in_first & (st == "out_of_view")).sum(),
        n_surviving=surviving.sum(),
        new_persistent=((pl.col("prev_status") == "new") & (st == "present")).sum(),
        new_transient=((pl.col("prev_status") == "new") & (st == "eliminated")).sum(),
        mean_size_change=(pl.col("size") / pl.col("prev_size") - 1).filter(in_prev & (st == "present")).mean(),
        # the doubt of the calls behind each count: expected wrong calls among the counted rows (down) and the
        # uncounted rows that may belong to the count (up), and the variance of both together
        formation_down=d.filter(st == "new").sum(),
        formation_var=(d * (1 - d)).filter(st == "new").sum(),
        elimination_down=d.filter(lost).sum(),
        elimination_up=d.filter(kept).sum(),
        elimination_var=(d * (1 - d)).filter(lost | kept).sum(),
        survival_down=d.filter(surviving).sum(),
        survival_up=d.filter(gone).sum(),
        survival_var=(d * (1 - d)).filter(surviving | gone).sum(),
    )
    n_first = first.group_by("animal").agg(n_first=pl.len())
    out = per.join(n_first, on="animal", how="left").with_columns(
        n_survival_reference=pl.col("n_first").fill_null(0) - pl.col("n_first_out")
    )
    ref = pl.col("n_reference").cast(pl.Float64)
    survival_ref = pl.col("n_survival_reference").cast(pl.Float64)
    later = pl.col("session_index") > 0
    judged = later & (ref > 0)
    out = out.with_columns(
        formation_rate=pl.when(judged).then(pl.col("gained") / ref),
        elimination_rate=pl.when(judged).then(pl.col("lost") / ref),
        turnover=pl.when(judged).then((pl.col("gained") + pl.col("lost")) / (2 * ref)),
        survival_fraction=pl.when(survival_ref > 0).then(pl.col("n_surviving") / survival_ref),
    )
    gained, lost_n, kept_n = (pl.col(c).cast(pl.Float64) for c in ("gained", "lost", "n_surviving"))
    formation = _poisson_score(gained, ref, pl.col("formation_down"), pl.lit(0.0), pl.col("formation_var"))
    elimination = _wilson(lost_n, ref, pl.col("elimination_down"), pl.col("elimination_up"), pl.col("elimination_var"))
    survival = _wilson(kept_n, survival_ref, pl.col("survival_down"), pl.col("survival_up"), pl.col("survival_var"))
    out = out.with_columns(
        formation_low=pl.when(judged).then(pl.min_horizontal(formation[0], pl.col("formation_rate"))),
        formation_high=pl.when(judged).then(pl.max_horizontal(formation[1], pl.col("formation_rate"))),
        elimination_low=pl.when(judged).then(pl.min_horizontal(elimination[0], pl.col("elimination_rate"))),
        elimination_high=pl.when(judged).then(pl.max_horizontal(elimination[1], pl.col("elimination_rate"))),
        # session 0's survival is 1 by definition (its reference is what is in view there): no interval
        survival_low=pl.when(later & (survival_ref > 0))
        .then(pl.min_horizontal(survival[0], pl.col("survival_fraction")))
        .otherwise(pl.col("survival_fraction")),
        survival_high=pl.when(later & (survival_ref > 0))
        .then(pl.max_horizontal(survival[1], pl.col("survival_fraction")))
        .otherwise(pl.col("survival_fraction")),
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
        [pl.col(c).cast(pl.Float64) for c in ("mean_size_change", *INTERVAL_COLUMNS)]
    )
    return out.select(DYNAMICS_COLUMNS).sort("animal", "session_index")


def rate_intervals(tracks: pl.DataFrame) -> pl.DataFrame:
    """95% intervals of formation, elimination and survival per session (see the module).

    Returns
    -------
    polars.DataFrame
        ``animal, session_index`` and :data:`INTERVAL_COLUMNS` (null for session 0's rates).
    """
    return spine_dynamics(tracks).select("animal", "session_index", *INTERVAL_COLUMNS)


def _wilson(
    k: pl.Expr, n: pl.Expr, down: pl.Expr, up: pl.Expr, var: pl.Expr, z: float = Z95
) -> tuple[pl.Expr, pl.Expr]:
    """Wilson score interval of the share ``k / n`` whose count is uncertain by ``var`` more: the lower end of
    the count ``k - down``, the upper end of ``k + up`` (both clipped to [0, n]), in [0, 1].

    The ends solve ``(x - p n)^2 = z^2 (n p (1 - p) + var)`` for ``p``; with ``down = up = var = 0`` it is the
    plain Wilson interval, which holds ``k / n``; ``down``, ``up`` and ``var`` only move its ends outwards.
    """

    def end(x: pl.Expr, sign: int) -> pl.Expr:
        x = x.clip(0, n)
        spread = (4 * x * (1 - x / n) + z**2 + 4 * var * (1 + z**2 / n)).clip(0).sqrt()
        return ((2 * x + z**2 + sign * z * spread) / (2 * (n + z**2))).clip(0, 1)

    return end(k - down, -1), end(k + up, 1)


def _poisson_score(
    k: pl.Expr, n: pl.Expr, down: pl.Expr, up: pl.Expr, var: pl.Expr, z: float = Z95
) -> tuple[pl.Expr, pl.Expr]:
    """Score interval of the rate ``k / n`` of a Poisson count per unit (it may exceed 1) whose count is uncertain
    by ``var`` more: the lower end of ``k - down``, the upper end of ``k + up``.

    The ends solve ``(x - r n)^2 = z^2 (r n + var)`` for ``r``; with ``down = up = var = 0`` the interval holds
    ``k / n``, and ``down``, ``up`` and ``var`` only move its ends outwards.
    """

    def end(x: pl.Expr, sign: int) -> pl.Expr:
        x = x.clip(0)
        spread = (4 * x + z**2 + 4 * var).clip(0).sqrt()
        return ((2 * x + z**2 + sign * z * spread) / (2 * n)).clip(0)

    return end(k - down, -1), end(k + up, 1)
