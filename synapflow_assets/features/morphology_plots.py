"""Pictures of an animal's spine morphology for the report: the distributions of head diameter, neck length
and head volume per session, and the head volume of persistent spines across sessions with intervals
(matplotlib, Agg; small PNGs)."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure

MORPHOLOGY_PANELS = (
    ("head_diameter_um", "head diameter (um)"),
    ("neck_length_um", "neck length (um)"),
    ("head_volume_um3", "head volume (um^3)"),
)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def morphology_png(features: pl.DataFrame, sessions: list[str], *, title: str = "") -> bytes:
    """Box plots per session (whiskers 5-95%) of head diameter, neck length and head volume.

    Parameters
    ----------
    features : polars.DataFrame
        One animal's ``spine_features`` rows with ``session`` and the columns of :data:`MORPHOLOGY_PANELS`
        (null where not measured).
    sessions : list of str
        The animal's sessions in acquisition order (a session without spines gets an empty slot).
    """
    figure, axes = plt.subplots(1, len(MORPHOLOGY_PANELS), figsize=(9, 2.6), dpi=90)
    x = list(range(1, len(sessions) + 1))
    for axis, (column, label) in zip(axes, MORPHOLOGY_PANELS, strict=False):
        measured = features.filter(pl.col(column).is_not_null() & pl.col(column).is_finite())
        per_session = measured.group_by("session").agg(pl.col(column))
        values = dict(zip(per_session["session"].to_list(), per_session[column].to_list(), strict=False))
        data = [np.asarray(values.get(s, []), dtype=float) for s in sessions]
        if data:
            axis.boxplot(data, positions=x, whis=(5, 95), showfliers=False, widths=0.6)
        axis.set_title(label, fontsize=9)
        axis.set_xticks(x, sessions, fontsize=7, rotation=30)
        axis.set_xlim(0.5, max(len(x), 1) + 0.5)
        axis.set_ylim(bottom=0)
        axis.tick_params(axis="y", labelsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def median_interval(relative: pl.DataFrame, *, level: float = 0.95) -> pl.DataFrame:
    """Per session the median relative size of the persistent spines and its distribution-free interval (the
    order statistics ``n/2 -/+ z sqrt(n)/2``).

    Returns
    -------
    polars.DataFrame
        ``session_index, n, median, median_low, median_high``.
    """
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    spread = z / 2 / pl.col("relative").count().sqrt()
    return (
        relative.group_by("session_index")
        .agg(
            n=pl.col("relative").count(),
            median=pl.col("relative").median(),
            median_low=pl.col("relative").quantile((0.5 - spread).clip(0, 1).first(), "lower"),
            median_high=pl.col("relative").quantile((0.5 + spread).clip(0, 1).first(), "higher"),
        )
        .sort("session_index")
    )


def relative_size_png(
    relative: pl.DataFrame, sessions: list[str], *, half_width: float, title: str = "", max_lines: int = 40
) -> bytes:
    """Head volume of each persistent spine relative to its first session (thin lines, at most ``max_lines``),
    the median with its 95% interval (bold), and the band an unchanged spine stays in with 95% probability
    from the measurement noise (``exp(-/+ half_width)``, shaded).

    Parameters
    ----------
    relative : polars.DataFrame
        ``features.size_change.relative_sizes`` of one animal.
    sessions : list of str
        The animal's sessions in order (``session_index`` 0, 1, ...).
    half_width : float
        ``features.size_change.log_ratio_half_width`` of the noise.
    """
    figure, axis = plt.subplots(figsize=(4.6, 2.8), dpi=90)
    x = np.arange(len(sessions))
    axis.fill_between(
        [-0.5, max(len(sessions), 1) - 0.5],
        math.exp(-half_width),
        math.exp(half_width),
        color="0.85",
        linewidth=0,
        label="noise (95%)",
    )
    if len(relative):
        wide = relative.pivot(on="session_index", index="track_id", values="relative", sort_columns=True)
        values = wide.drop("track_id").to_numpy()
        columns = [int(c) for c in wide.columns[1:]]
        axis.plot(columns, values[:max_lines].T, color="0.55", linewidth=0.6, alpha=0.7)
        medians = median_interval(relative)
        centre = medians["median"].to_numpy()
        axis.errorbar(
            medians["session_index"].to_numpy(),
            centre,
            yerr=[centre - medians["median_low"].to_numpy(), medians["median_high"].to_numpy() - centre],
            fmt="o-",
            color="tab:purple",
            capsize=3,
            label="median (95%)",
        )
    axis.axhline(1.0, color="0.3", linewidth=0.5, linestyle=":")
    axis.set_xticks(x, sessions, fontsize=7, rotation=30)
    axis.set(ylabel="head volume / first", xlim=(-0.5, max(len(sessions), 1) - 0.5))
    axis.legend(fontsize=7, frameon=False, loc="upper left")
    n = relative["track_id"].n_unique() if len(relative) else 0
    axis.set_title(f"{title + ': ' if title else ''}{n} persistent spines", fontsize=9)
    figure.tight_layout()
    return _png(figure)
