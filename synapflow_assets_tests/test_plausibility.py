"""Each plausibility check fires on a case built for it and stays quiet on plausible numbers."""

import polars as pl

from synapflow_assets.features.plausibility import (
    PlausibilityLimits,
    formation_ceiling,
    plausibility,
    split_events,
    split_identity_share,
    survival_floor,
)


def tracks(rows):
    return pl.DataFrame(
        rows, schema=["session", "track_id", "status", "xmin", "ymin", "xmax", "ymax"], orient="row"
    ).with_columns(pl.col("xmin", "ymin", "xmax", "ymax").cast(pl.Float64))


def dynamics(counts, eliminated=None, sessions=None, formed=None):
    sessions = sessions or [f"s{i}" for i in range(len(counts))]
    eliminated = eliminated or [None] + [0.02] * (len(counts) - 1)
    formed = formed or [None] + [0.02] * (len(counts) - 1)
    return pl.DataFrame(
        {
            "session": sessions,
            "session_index": list(range(len(counts))),
            "n_in_view": counts,
            "elimination_rate": eliminated,
            "elimination_low": [None if e is None else max(e - 0.05, 0) for e in eliminated],
            "elimination_high": [None if e is None else e + 0.05 for e in eliminated],
            "formation_rate": formed,
            "formation_low": [None if f is None else max(f - 0.05, 0) for f in formed],
            "formation_high": [None if f is None else f + 0.05 for f in formed],
        }
    )


PLAUSIBLE = tracks(
    [
        ("s0", 1, "present", 0, 0, 40, 40),
        ("s1", 1, "present", 2, 0, 42, 40),
        ("s1", 2, "new", 200, 0, 240, 40),
        ("s1", 3, "eliminated", 400, 0, 440, 40),
    ]
)


def by_name(found):
    return {f.name: f for f in found}


def test_plausible_numbers_pass_every_check():
    found = by_name(
        plausibility(PLAUSIBLE, dynamics([30, 31, 30]), days=[None, 0.2, 0.2], densities={"s0": 1.0, "s1": 1.1})
    )
    assert all(f.passed for f in found.values()), [f.line for f in found.values() if not f.passed]
    assert set(found) == {
        "split_identity",
        "count_jump",
        "survival_floor",
        "formation_ceiling",
        "density",
        "intervals",
    }


def test_one_spine_split_into_an_eliminated_and_a_new_track_is_found():
    split = tracks(
        [
            ("s1", 1, "eliminated", 100, 100, 140, 140),  # where the spine was, aligned
            ("s1", 2, "new", 104, 102, 144, 142),  # the same spine, a new id
            ("s1", 3, "present", 300, 100, 340, 140),
            ("s1", 4, "new", 500, 100, 540, 140),
        ]
    )
    events = split_events(split)
    assert sorted(events["track_id"].to_list()) == [1, 2] and split_identity_share(split) == 2 / 3
    found = by_name(plausibility(split, dynamics([30, 31]), days=[None, 1.0], densities={}))
    assert not found["split_identity"].passed and "2 of 3 events (67%)" in found["split_identity"].line


def test_a_session_count_jumping_from_its_neighbours_is_found():
    found = by_name(plausibility(PLAUSIBLE, dynamics([30, 14, 29, 31]), days=[None, 1, 1, 1], densities={}))
    assert not found["count_jump"].passed and found["count_jump"].line.endswith("s1 14 spines")
    steady = by_name(plausibility(PLAUSIBLE, dynamics([30, 26, 23, 21]), days=[None, 1, 1, 1], densities={}))
    assert steady["count_jump"].passed  # a slow decline is not a jump


def test_survival_below_the_floor_for_the_interval_is_found_and_settable():
    limits = PlausibilityLimits()
    assert (
        survival_floor(0.1, limits) == 0.95 and survival_floor(4, limits) == 0.8 and survival_floor(40, limits) == 0.5
    )
    table = dynamics([30, 30, 30], eliminated=[None, 0.3, 0.15])
    found = by_name(plausibility(PLAUSIBLE, table, days=[None, 0.1, 4.0], densities={}))
    assert (
        not found["survival_floor"].passed
        and "s1 0.70 (at most 0.75) over 0.1 d (floor 0.95)" in found["survival_floor"].line
    )
    assert "s2" not in found["survival_floor"].line  # 0.85 over 4 days is plausible
    lenient = PlausibilityLimits(max_loss_per_day=0.5)
    assert by_name(plausibility(PLAUSIBLE, table, days=[None, 0.1, 4.0], densities={}, limits=lenient))[
        "survival_floor"
    ].passed


def test_survival_lost_little_by_little_within_a_day_is_found():
    """Each interval loses a plausible few spines, but since the first session 21% are gone within 6 hours."""
    table = dynamics([21, 20, 19, 18, 17], eliminated=[None, 0.05, 0.05, 0.05, 0.05]).with_columns(
        survival_fraction=pl.Series([1.0, 0.95, 0.9, 0.84, 0.79]),
        survival_high=pl.Series([1.0, 0.99, 0.97, 0.94, 0.91]),
    )
    hours = [None, 0.06, 0.06, 0.06, 0.06]
    line = by_name(plausibility(PLAUSIBLE, table, days=hours, densities={}))["survival_floor"].line
    assert "s3 0.84 (at most 0.94) since the first session, 0.18 d (floor 0.95)" in line
    assert "s4 0.79 (at most 0.91)" in line and "s2" not in line  # s2 could still be 0.97
    weeks = [None, 7.0, 7.0, 7.0, 7.0]  # the same losses over weeks are plausible
    assert by_name(plausibility(PLAUSIBLE, table, days=weeks, densities={}))["survival_floor"].passed


def test_formation_above_the_ceiling_for_the_interval_is_found_and_settable():
    limits = PlausibilityLimits()
    assert formation_ceiling(0.1, limits) == 0.05 and formation_ceiling(4, limits) == 0.2
    assert formation_ceiling(40, limits) == 0.5
    # dim spines missed in the first sessions and found hours later come out as formed
    table = dynamics([20, 26, 26], formed=[None, 0.31, 0.22])
    found = by_name(plausibility(PLAUSIBLE, table, days=[None, 0.1, 4.0], densities={}))
    line = found["formation_ceiling"].line
    assert not found["formation_ceiling"].passed and "s1 0.31 (at least 0.26) over 0.1 d (ceiling 0.05)" in line
    assert "s2" not in line  # 0.22 (at least 0.17) over 4 days is plausible
    lenient = PlausibilityLimits(max_gain_per_day=0.5)
    assert by_name(plausibility(PLAUSIBLE, table, days=[None, 0.1, 4.0], densities={}, limits=lenient))[
        "formation_ceiling"
    ].passed


def test_density_outside_the_range_and_rates_outside_their_interval_are_found():
    table = dynamics([30, 30]).with_columns(elimination_high=pl.Series([None, 0.01]))
    found = by_name(plausibility(PLAUSIBLE, table, days=[None, 1.0], densities={"s0": 0.05, "s1": 1.0}))
    assert not found["density"].passed and "s0 0.05/um" in found["density"].line and "s1" not in found["density"].line
    assert (
        not found["intervals"].passed and "s1 elimination_rate 0.020 not in [0.000, 0.010]" in found["intervals"].line
    )


def test_tracks_of_different_animals_never_overlap_each_other():
    two = pl.concat(
        [
            tracks([("s1", 1, "new", 100, 100, 140, 140)]).with_columns(animal=pl.lit("a")),
            tracks([("s1", 2, "present", 100, 100, 140, 140)]).with_columns(animal=pl.lit("b")),
        ]
    )
    assert split_identity_share(two) == 0.0


def test_spines_above_each_other_in_a_stack_are_not_a_split_and_one_event_is_not_a_pattern():
    stacked = tracks(
        [("s1", 1, "eliminated", 100, 100, 140, 140), ("s1", 2, "present", 100, 100, 140, 140)]
    ).with_columns(first_layer=pl.Series([2, 9]), last_layer=pl.Series([4, 12]))
    assert split_identity_share(stacked) == 0.0
    one = tracks([("s1", 1, "eliminated", 100, 100, 140, 140), ("s1", 2, "present", 104, 100, 144, 140)])
    assert split_identity_share(one) == 1.0
    assert by_name(plausibility(one, dynamics([30, 30]), days=[None, 1.0], densities={}))["split_identity"].passed
