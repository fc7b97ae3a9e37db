"""Warn checks of `spine_dynamics`: is an animal's output plausible? (`features.plausibility`)"""

import dagster as dg
import polars as pl

from ..features.plausibility import Finding, PlausibilityLimits, animal_plausibility

DESCRIPTIONS = {
    "split_identity": "few events overlap another track of their session (one spine split into two tracks)",
    "count_jump": "no session's spine count jumps by more than max_count_jump from its neighbours",
    "survival_floor": "survival of each interval and since the first session, at the best end of its 95% "
    "interval, above the floor for its length (plausibility section)",
    "formation_ceiling": "formation of each interval, at the low end of its 95% interval, below the ceiling for "
    "its length (plausibility section)",
    "density": "spines per um of dendrite within the plausible range",
    "intervals": "every rate lies inside its own 95% interval",
}
PLAUSIBILITY_CHECKS = [
    dg.AssetCheckSpec(name, asset="spine_dynamics", description=text) for name, text in DESCRIPTIONS.items()
]


def findings(connection, animal: str, tracks: pl.DataFrame, dynamics: pl.DataFrame, limits: PlausibilityLimits):
    """The plausibility findings of one animal."""
    sessions = connection.sql(
        "SELECT session, acquired_at, spines_per_um FROM sessions WHERE animal = $1", params=[animal]
    ).pl()
    return animal_plausibility(tracks, dynamics, sessions, limits)


def check_results(found: list[Finding]) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(check_name=f.name, passed=f.passed, severity=dg.AssetCheckSeverity.WARN, description=f.line)
        for f in found
    ]
