"""Warn checks of `spine_dynamics`: is an animal's output plausible? (`features.plausibility`)"""

import dagster as dg
import polars as pl

from ..features.plausibility import Finding, PlausibilityLimits, plausibility

DESCRIPTIONS = {
    "split_identity": "few events overlap another track of their session (one spine split into two tracks)",
    "count_jump": "no session's spine count jumps by more than max_count_jump from its neighbours",
    "survival_floor": "survival of each interval, at the best end of its 95% interval, above the floor for its "
    "length (plausibility section)",
    "density": "spines per um of dendrite within the plausible range",
    "intervals": "every rate lies inside its own 95% interval",
}
PLAUSIBILITY_CHECKS = [
    dg.AssetCheckSpec(name, asset="spine_dynamics", description=text) for name, text in DESCRIPTIONS.items()
]


def session_facts(connection, animal: str, order: list[str]) -> tuple[list[float | None], dict[str, float | None]]:
    """Days since the previous session (None where a time is unknown) and spines per um, in ``order``."""
    table = connection.sql(
        "SELECT session, acquired_at, spines_per_um FROM sessions WHERE animal = $1", params=[animal]
    ).pl()
    when = dict(zip(table["session"], table["acquired_at"].str.to_datetime(time_zone="UTC", strict=False).to_list()))
    times: list = [when.get(s) for s in order]
    days: list[float | None] = [None]
    days += [(b - a).total_seconds() / 86400 if a and b else None for a, b in zip(times, times[1:])]
    return days, dict(zip(table["session"], table["spines_per_um"]))


def findings(connection, animal: str, tracks: pl.DataFrame, dynamics: pl.DataFrame, limits: PlausibilityLimits):
    """The plausibility findings of one animal."""
    order = dynamics.sort("session_index")["session"].to_list()
    days, densities = session_facts(connection, animal, order)
    return plausibility(tracks, dynamics, days=days, densities=densities, limits=limits)


def check_results(found: list[Finding]) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(check_name=f.name, passed=f.passed, severity=dg.AssetCheckSeverity.WARN, description=f.line)
        for f in found
    ]
