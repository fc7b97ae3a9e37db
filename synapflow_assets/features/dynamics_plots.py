"""Pictures of an animal's dynamics for the UI and reports: survival, formation and elimination per session
with their 95% intervals (matplotlib, Agg; small PNGs)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from .dynamics import IN_VIEW

RATE_COLUMNS = ("formation_rate", "elimination_rate", "survival_fraction")
TABLE_COLUMNS = [
    "session",
    "n_in_view",
    "gained",
    "lost",
    "formation_rate",
    "formation_low",
    "formation_high",
    "elimination_rate",
    "elimination_low",
    "elimination_high",
    "survival_fraction",
    "survival_low",
    "survival_high",
]


def dynamics_png(dynamics: pl.DataFrame, *, title: str = "") -> bytes:
    """Survival (left) and formation / elimination (right) per session, each with its 95% interval.

    Parameters
    ----------
    dynamics : polars.DataFrame
        One animal's rows of ``features.dynamics.spine_dynamics``, in session order.
    """
    d = dynamics.sort("session_index")
    sessions = d["session"].to_list()
    x = list(range(len(sessions)))
    figure, (left, right) = plt.subplots(1, 2, figsize=(7.5, 2.8), dpi=90)
    left.fill_between(
        x,
        d["survival_low"].fill_null(float("nan")).to_numpy(),
        d["survival_high"].fill_null(float("nan")).to_numpy(),
        color="tab:blue",
        alpha=0.2,
        linewidth=0,
    )
    left.plot(x, d["survival_fraction"].to_numpy(), "o-", color="tab:blue")
    left.set(ylim=(0, 1.05), ylabel="survival")
    left.set_title("spines of the first session kept", fontsize=9)
    for offset, (name, colour, label) in enumerate(
        (("formation", "tab:green", "formation"), ("elimination", "tab:red", "elimination"))
    ):
        later = d.filter(pl.col("session_index") > 0)
        xs = [x[sessions.index(s)] + (offset - 0.5) * 0.15 for s in later["session"]]
        rate = later[f"{name}_rate"].to_numpy()
        low = (later[f"{name}_rate"] - later[f"{name}_low"]).fill_null(0).clip(0).to_numpy()
        high = (later[f"{name}_high"] - later[f"{name}_rate"]).fill_null(0).clip(0).to_numpy()
        right.errorbar(xs, rate, yerr=[low, high], fmt="o", color=colour, capsize=3, label=label)
    right.set(ylim=(0, None), ylabel="rate per session")
    right.set_title("formation, elimination (95% interval)", fontsize=9)
    right.legend(fontsize=7, frameon=False)
    for axis in (left, right):
        axis.set_xticks(x, sessions, fontsize=7, rotation=30)
        axis.set_xlim(-0.5, max(len(x), 1) - 0.5)  # never identical limits (no session yet: one empty slot)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def dynamics_table(dynamics: pl.DataFrame) -> pl.DataFrame:
    """The per-session numbers a PI reads, rounded to 3 decimals."""
    return (
        dynamics.sort("session_index")
        .select(TABLE_COLUMNS)
        .with_columns(
            [pl.col(c).round(3) for c in TABLE_COLUMNS if c not in ("session", "n_in_view", "gained", "lost")]
        )
    )


def persistent_sizes(tracks: pl.DataFrame) -> pl.DataFrame:
    """Size of each persistent spine (a track with a size in every session) relative to its first session.

    Parameters
    ----------
    tracks : polars.DataFrame
        One animal's tracks with ``session``, ``session_index``, ``track_id`` and ``size`` (null where absent).

    Returns
    -------
    polars.DataFrame
        ``track_id, session_index, session, relative_size``.
    """
    sized = tracks.filter(pl.col("size").is_not_null() & (pl.col("size") > 0))
    n_sessions = tracks["session_index"].n_unique()
    persistent = (
        sized.group_by("track_id").agg(pl.col("session_index").n_unique().alias("n")).filter(pl.col("n") == n_sessions)
    )
    kept = sized.join(persistent.select("track_id"), on="track_id").sort("track_id", "session_index")
    return kept.with_columns(relative_size=pl.col("size") / pl.col("size").first().over("track_id")).select(
        "track_id", "session_index", "session", "relative_size"
    )


def size_trajectories_png(tracks: pl.DataFrame, *, title: str = "", max_lines: int = 40) -> bytes:
    """Relative size of persistent spines across sessions: one thin line per spine (at most ``max_lines``),
    the median and its interquartile band in bold."""
    sizes = persistent_sizes(tracks)
    figure, axis = plt.subplots(figsize=(4.2, 2.8), dpi=90)
    sessions = tracks.select("session_index", "session").unique().sort("session_index")
    if len(sizes):
        wide = sizes.pivot(on="session_index", index="track_id", values="relative_size", sort_columns=True).drop(
            "track_id"
        )
        values = wide.to_numpy()
        x = [int(c) for c in wide.columns]
        axis.plot(x, values[:max_lines].T, color="0.6", linewidth=0.6, alpha=0.7)
        quartiles = (
            sizes.group_by("session_index")
            .agg(
                pl.col("relative_size").quantile(q).alias(name)
                for q, name in ((0.25, "q1"), (0.5, "median"), (0.75, "q3"))
            )
            .sort("session_index")
        )
        axis.fill_between(
            quartiles["session_index"].to_numpy(),
            quartiles["q1"].to_numpy(),
            quartiles["q3"].to_numpy(),
            color="tab:purple",
            alpha=0.25,
            linewidth=0,
        )
        axis.plot(quartiles["session_index"].to_numpy(), quartiles["median"].to_numpy(), "o-", color="tab:purple")
    axis.axhline(1.0, color="0.3", linewidth=0.5, linestyle=":")
    axis.set_xticks(sessions["session_index"].to_list(), sessions["session"].to_list(), fontsize=7, rotation=30)
    axis.set(ylabel="size / first session", xlim=(-0.5, max(sessions["session_index"].to_list(), default=0) + 0.5))
    axis.set_title(f"{title + ': ' if title else ''}{sizes['track_id'].n_unique()} persistent spines", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def persistent_size_rows(sizes: pl.DataFrame, n_sessions: int) -> pl.DataFrame:
    """The track rows of an animal with ``size`` kept only where the spine is persistent: its track is in view
    (``present`` or ``new``, what the ``dynamics`` table's ``n_in_view`` counts) with a size in each of the
    animal's ``n_sessions`` sessions (null elsewhere, so the plot counts and draws only those).

    Parameters
    ----------
    sizes : polars.DataFrame
        ``session, session_index, track_id, status, size`` (null without a detected spine).
    n_sessions : int
        Sessions of the animal (rows of its ``dynamics``).
    """
    seen = pl.col("status").is_in(IN_VIEW) & pl.col("size").is_not_null() & (pl.col("size") > 0)
    persistent = (
        sizes.filter(seen)
        .group_by("track_id")
        .agg(n=pl.col("session_index").n_unique())
        .filter(pl.col("n") == n_sessions)["track_id"]
    )
    return sizes.with_columns(size=pl.when(seen & pl.col("track_id").is_in(persistent.implode())).then(pl.col("size")))
