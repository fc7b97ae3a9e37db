"""Declarative automation: a session that lands flows on to the animal's tracks and dynamics.

Sessions are one dynamic dimension shared by all animals, so an animal's
partition of ``spine_tracks`` maps to ``animal|session`` for every session key
of every animal, including keys that animal never had. These tests evaluate
the real conditions of the definitions on a temporary instance, with
materializations reported without running the (slow) session assets.
"""
import dagster as dg
import pytest

from synapflow_assets.definitions import defs
from synapflow_assets.defs.partitions import ANIMALS, SESSIONS, session_partition_key

SESSION_ASSETS = ["raw_volume", "detections_2d", "spines_3d"]


def materialize(instance, assets, animal, sessions):
    for session in sessions:
        for asset in assets:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset, partition=str(session_partition_key(animal, session))))


def requested(result, asset):
    return sorted(result.get_requested_partitions(dg.AssetKey(asset)))


@pytest.fixture
def automation():
    """A temporary instance with animal m1 (day00, day04) and m2 (day00, day10), and a first tick."""
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ANIMALS.name, ["m1", "m2"])
        instance.add_dynamic_partitions(SESSIONS.name, ["day00", "day04", "day10"])
        instance.report_runless_asset_event(dg.AssetMaterialization("spine_detector"))
        state = {"cursor": dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor}

        def tick():
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state["cursor"])
            state["cursor"] = result.cursor
            return result

        yield instance, tick


def test_animals_with_different_session_keys_get_tracks_and_dynamics(automation):
    instance, tick = automation
    materialize(instance, SESSION_ASSETS, "m1", ["day00", "day04"])
    materialize(instance, SESSION_ASSETS, "m2", ["day00", "day10"])
    result = tick()
    assert requested(result, "spine_features") == ["m1|day00", "m1|day04", "m2|day00", "m2|day10"]
    assert requested(result, "spine_tracks") == ["m1", "m2"]
    assert requested(result, "spine_dynamics") == []  # its spine_tracks is requested in the same tick

    materialize(instance, ["spine_features"], "m1", ["day00", "day04"])
    materialize(instance, ["spine_features"], "m2", ["day00", "day10"])
    for animal in ("m1", "m2"):
        instance.report_runless_asset_event(dg.AssetMaterialization("spine_tracks", partition=animal))
    result = tick()
    assert requested(result, "spine_tracks") == []
    assert requested(result, "spine_dynamics") == ["m1", "m2"]

    for animal in ("m1", "m2"):
        instance.report_runless_asset_event(dg.AssetMaterialization("spine_dynamics", partition=animal))
    assert tick().total_requested == 0


def test_a_new_session_of_one_animal_updates_only_that_animal(automation):
    instance, tick = automation
    materialize(instance, [*SESSION_ASSETS, "spine_features"], "m1", ["day00", "day04"])
    materialize(instance, [*SESSION_ASSETS, "spine_features"], "m2", ["day00", "day10"])
    for animal in ("m1", "m2"):
        for asset in ("spine_tracks", "spine_dynamics"):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=animal))
    tick()
    instance.add_dynamic_partitions(SESSIONS.name, ["day14"])
    materialize(instance, SESSION_ASSETS, "m2", ["day14"])
    result = tick()
    assert requested(result, "spine_tracks") == ["m2"]
    assert requested(result, "spine_features") == ["m2|day14"]


def test_a_failed_session_does_not_block_tracks_and_no_session_does_not_start_them(automation):
    instance, tick = automation
    materialize(instance, SESSION_ASSETS, "m1", ["day00"])
    materialize(instance, ["raw_volume"], "m1", ["day04"])  # day04 failed in detection: no spines_3d
    result = tick()
    assert requested(result, "spine_tracks") == ["m1"]  # m2 has no session with spines yet
