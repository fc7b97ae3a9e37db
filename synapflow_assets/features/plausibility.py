"""Checks a lab would make on an animal's dynamics before believing them: each one line, warn only.

- ``split_identity``: events (new, eliminated) whose place overlaps another track of the same
  session: one spine turned into an "eliminated" and a "new" track.
- ``count_jump``: a session whose spine count differs by more than a share from its neighbours.
- ``survival_floor``: survival over an interval below what the interval allows (within a day
  nearly every spine persists; over days a few % to 15% turn over).
- ``formation_ceiling``: the same for new spines: more formed over an interval than it allows.
- ``density``: spines per um of dendrite outside the range of cortical dendrites.
- ``intervals``: a rate outside its own 95% interval.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import polars as pl

EVENTS = ("new", "eliminated")
TRACKED = ("present", "new", "eliminated")


@dataclass(frozen=True)
class PlausibilityLimits:
    """Where a lab's numbers stop being plausible (section ``plausibility`` of ``synapflow.yaml``).

    Attributes
    ----------
    max_split_share : float
        Share of events that may overlap another track of their session.
    min_split_events : int
        A single overlapping event is not a pattern: the check fires from this many on.
    max_count_jump : float
        Relative change of a session's spine count from each of its neighbours.
    max_loss_per_day : float
        Survival over an interval of ``d`` days (at least 1) must be at least
        ``1 - max_loss_per_day * d`` (within one day: 0.95 at the default).
    min_survival : float
        The floor never goes below this, however long the interval.
    max_gain_per_day : float
        The formation rate over an interval of ``d`` days (at least 1) must be at most
        ``max_gain_per_day * d``, and never more than ``1 - min_survival`` is required of it.
    density_per_um : tuple of float
        Plausible spines per um of dendrite.
    min_iou : float
        Intersection over union from which two places of one session are one spine's (the same spine
        found twice overlaps itself at 0.5 or more; neighbours in a dense stack, whose boxes share half of
        the smaller one, stay below 0.25).
    """

    max_split_share: float = 0.05
    min_split_events: int = 2
    max_count_jump: float = 0.3
    max_loss_per_day: float = 0.05
    min_survival: float = 0.5
    max_gain_per_day: float = 0.05
    density_per_um: tuple[float, float] = (0.2, 3.0)
    min_iou: float = 0.3


@dataclass(frozen=True)
class Finding:
    """One check: its name, whether it passed, and one line saying why."""

    name: str
    passed: bool
    line: str


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of xyxy boxes (n, m)."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inter = w * h
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def split_events(tracks: pl.DataFrame, *, min_iou: float = PlausibilityLimits.min_iou) -> pl.DataFrame:
    """The events whose place overlaps the place of another track in the same session.

    Parameters
    ----------
    tracks : polars.DataFrame
        ``session, track_id, status, xmin, ymin, xmax, ymax`` (the place in that session's frame),
        ``first_layer, last_layer`` when known (places on layers that do not overlap do not overlap), and
        ``animal`` when it holds several animals.

    Returns
    -------
    polars.DataFrame
        ``session, track_id, status, other_track_id`` of each overlapping event.
    """
    schema = {"session": pl.String, "track_id": pl.Int64, "status": pl.String, "other_track_id": pl.Int64}
    placed = tracks.filter(pl.col("status").is_in(TRACKED) & pl.col("xmin").is_not_null())
    found = [pl.DataFrame(schema=schema)]
    by = ["animal", "session"] if "animal" in tracks.columns else ["session"]
    for key, rows in placed.group_by(by):
        session = key[-1]
        event = rows["status"].is_in(EVENTS).to_numpy()
        if not event.any():
            continue
        boxes = rows.select("xmin", "ymin", "xmax", "ymax").to_numpy().astype(np.float64)
        ids = rows["track_id"].to_numpy()
        cover = _iou(boxes[event], boxes)
        cover[ids[event][:, None] == ids[None, :]] = 0.0
        if {"first_layer", "last_layer"} <= set(rows.columns):  # in a z-stack, spines above each other differ
            first = rows["first_layer"].fill_null(-(10**9)).to_numpy()
            last = rows["last_layer"].fill_null(10**9).to_numpy()
            layers = np.minimum(last[event][:, None], last[None, :]) >= np.maximum(
                first[event][:, None], first[None, :]
            )
            cover[~layers] = 0.0
        best = cover.argmax(axis=1)
        hit = cover[np.arange(len(best)), best] >= min_iou
        found.append(
            pl.DataFrame(
                {
                    "session": [str(session)] * int(hit.sum()),
                    "track_id": ids[event][hit].tolist(),
                    "status": rows.filter(pl.Series(event))["status"].filter(pl.Series(hit)).to_list(),
                    "other_track_id": ids[best[hit]].tolist(),
                },
                schema=schema,
            )
        )
    return pl.concat(found)


def split_identity_share(tracks: pl.DataFrame, *, min_iou: float = PlausibilityLimits.min_iou) -> float:
    """Share of the events (new, eliminated) that overlap another track of their session (0 without events)."""
    events = int(tracks["status"].is_in(EVENTS).sum())
    return len(split_events(tracks, min_iou=min_iou)) / events if events else 0.0


def _ordered(dynamics: pl.DataFrame) -> pl.DataFrame:
    return dynamics.sort("session_index")


def count_jumps(dynamics: pl.DataFrame, *, max_jump: float) -> list[str]:
    """Sessions whose ``n_in_view`` differs by more than ``max_jump`` from every neighbour."""
    table = _ordered(dynamics)
    n = table["n_in_view"].cast(pl.Float64).to_numpy()
    if len(n) < 2:
        return []
    change = np.abs(n[1:] - n[:-1]) / np.maximum(np.minimum(n[1:], n[:-1]), 1.0)
    jump = change > max_jump
    before = np.concatenate([[True], jump])  # a missing neighbour does not clear a session
    after = np.concatenate([jump, [True]])
    flagged = before & after
    sessions = table["session"].to_list()
    return [f"{sessions[i]} {int(n[i])} spines" for i in np.flatnonzero(flagged)]


def survival_floor(days: float, limits: PlausibilityLimits) -> float:
    """The lowest plausible survival over an interval of ``days``."""
    return max(limits.min_survival, 1.0 - limits.max_loss_per_day * max(days, 1.0))


def low_survival(dynamics: pl.DataFrame, days: list[float | None], limits: PlausibilityLimits) -> list[str]:
    """Survival below the floor for its time span even at the best end of its 95% interval (a few spines more or
    less in a sparse field are chance, not a finding): over each interval (``1 - elimination_rate``, best end
    ``1 - elimination_low``), and since the first session (``survival_fraction``, best end ``survival_high``: small
    losses that each interval allows add up, 0.79 within a day on the MIP stand-in with every interval plausible).

    ``days[i]`` is the time from session ``i - 1`` to ``i`` (None when unknown: one day is assumed).
    """
    table = _ordered(dynamics)
    out = []
    since_first = 0.0
    for row, interval in zip(table.iter_rows(named=True), days, strict=False):
        if row["session_index"] == 0:
            continue
        span = interval if interval is not None else 1.0
        since_first += span
        said = f"{interval:.2g} d" if interval is not None else "unknown interval"
        rate = row.get("elimination_rate")
        if rate is not None:
            low = row.get("elimination_low")
            best = 1.0 - (low if low is not None else rate)
            if best < (floor := survival_floor(span, limits)):
                out.append(f"{row['session']} {1.0 - rate:.2f} (at most {best:.2f}) over {said} (floor {floor:.2f})")
        survival = row.get("survival_fraction")
        if survival is not None:
            high = row.get("survival_high")
            best = high if high is not None else survival
            if best < (floor := survival_floor(since_first, limits)):
                out.append(
                    f"{row['session']} {survival:.2f} (at most {best:.2f}) since the first session, "
                    f"{since_first:.2g} d (floor {floor:.2f})"
                )
    return out


def formation_ceiling(days: float, limits: PlausibilityLimits) -> float:
    """The highest plausible formation rate over an interval of ``days``."""
    return min(1.0 - limits.min_survival, limits.max_gain_per_day * max(days, 1.0))


def high_formation(dynamics: pl.DataFrame, days: list[float | None], limits: PlausibilityLimits) -> list[str]:
    """Intervals whose formation rate is above the ceiling for their length even at the low end of its 95%
    interval (``formation_low``, when the table has it); ``days`` as in :func:`low_survival`."""
    table = _ordered(dynamics)
    out = []
    for row, interval in zip(table.iter_rows(named=True), days, strict=False):
        rate = row.get("formation_rate")
        if row["session_index"] == 0 or rate is None:
            continue
        low = row.get("formation_low")
        best = low if low is not None else rate
        ceiling = formation_ceiling(interval if interval is not None else 1.0, limits)
        if best > ceiling:
            span = f"{interval:.2g} d" if interval is not None else "unknown interval"
            out.append(f"{row['session']} {rate:.2f} (at least {best:.2f}) over {span} (ceiling {ceiling:.2f})")
    return out


def density_outside(densities: dict[str, float | None], limits: PlausibilityLimits) -> list[str]:
    """Sessions whose spines per um of dendrite fall outside ``limits.density_per_um``."""
    low, high = limits.density_per_um
    return [f"{s} {d:.2f}/um" for s, d in densities.items() if d is not None and not low <= d <= high]


def rates_outside_intervals(dynamics: pl.DataFrame) -> list[str]:
    """Rates that lie outside their own 95% interval."""
    pairs = {
        "formation_rate": ("formation_low", "formation_high"),
        "elimination_rate": ("elimination_low", "elimination_high"),
        "survival_fraction": ("survival_low", "survival_high"),
    }
    out = []
    for rate, (low, high) in pairs.items():
        if not {rate, low, high} <= set(dynamics.columns):
            continue
        bad = dynamics.filter(
            pl.col(rate).is_not_null()
            & pl.col(low).is_not_null()
            & ((pl.col(rate) < pl.col(low) - 1e-9) | (pl.col(rate) > pl.col(high) + 1e-9))
        )
        out += [
            f"{r['session']} {rate} {r[rate]:.3f} not in [{r[low]:.3f}, {r[high]:.3f}]"
            for r in bad.iter_rows(named=True)
        ]
    return out


def plausibility(
    tracks: pl.DataFrame,
    dynamics: pl.DataFrame,
    *,
    days: list[float | None],
    densities: dict[str, float | None],
    limits: PlausibilityLimits = PlausibilityLimits(),
) -> list[Finding]:
    """Every check on one animal, each with one line."""
    events = int(tracks["status"].is_in(EVENTS).sum())
    splits = split_events(tracks, min_iou=limits.min_iou)
    share = len(splits) / events if events else 0.0
    findings = [
        Finding(
            "split_identity",
            share <= limits.max_split_share or len(splits) < limits.min_split_events,
            f"{len(splits)} of {events} events ({share:.0%}) overlap another track of their session "
            f"(limit {limits.max_split_share:.0%})",
        )
    ]
    low, high = limits.density_per_um
    for name, found, passed_line, failed_line in (
        (
            "count_jump",
            count_jumps(dynamics, max_jump=limits.max_count_jump),
            f"spine counts change by at most {limits.max_count_jump:.0%} between sessions",
            f"count jumps by more than {limits.max_count_jump:.0%} from its neighbours",
        ),
        (
            "survival_floor",
            low_survival(dynamics, days, limits),
            "survival of every interval is above its floor",
            "survival below the floor for the interval",
        ),
        (
            "formation_ceiling",
            high_formation(dynamics, days, limits),
            "formation of every interval is below its ceiling",
            "formation above the ceiling for the interval",
        ),
        (
            "density",
            density_outside(densities, limits),
            f"spine density within {low}-{high} spines per um",
            f"spines per um outside {low}-{high}",
        ),
        ("intervals", rates_outside_intervals(dynamics), "every rate lies in its 95% interval", "rate outside it"),
    ):
        findings.append(Finding(name, not found, f"{failed_line}: " + "; ".join(found) if found else passed_line))
    return findings


def session_facts(sessions: pl.DataFrame, order: list[str]) -> tuple[list[float | None], dict[str, float | None]]:
    """Days since the previous session (None where a time is unknown) in ``order``, and spines per um.

    ``sessions``: ``session, acquired_at`` (ISO text), ``spines_per_um`` (the feature store's table).
    """
    times = sessions["acquired_at"].cast(pl.String).str.to_datetime(time_zone="UTC", strict=False).to_list()
    when = dict(zip(sessions["session"], times, strict=False))
    ordered: list = [when.get(s) for s in order]
    days: list[float | None] = [None]
    days += [(b - a).total_seconds() / 86400 if a and b else None for a, b in itertools.pairwise(ordered)]
    return days, dict(zip(sessions["session"], sessions["spines_per_um"], strict=False))


def animal_plausibility(
    tracks: pl.DataFrame, dynamics: pl.DataFrame, sessions: pl.DataFrame, limits: PlausibilityLimits
) -> list[Finding]:
    """:func:`plausibility` of one animal from its tables in the feature store (``tracks``, ``dynamics``,
    ``sessions``)."""
    days, densities = session_facts(sessions, dynamics.sort("session_index")["session"].to_list())
    return plausibility(tracks, dynamics, days=days, densities=densities, limits=limits)
