"""Automation: a session that lands flows on to its features, then to the animal's tracks and dynamics.

Sessions are partitions ``animal/session`` (only those that landed), so the
animal assets run from ``animal_sensor`` once every session of the animal has
its features. These tests evaluate the real conditions and the real sensor of
the definitions on a temporary instance, with materializations reported
without running the (slow) session assets.
"""

import dagster as dg
import pytest

from synapflow_assets.definitions import defs
from synapflow_assets.defs.animal_sensor import animal_sensor
from synapflow_assets.defs.partitions import SESSIONS, register_sessions, session_partition_key
from synapflow_assets.defs.resources import AlignmentSettings, DataLake

SESSION_ASSETS = ["raw_volume", "detections_2d", "spines_3d"]


def materialize(instance, assets, animal, sessions):
    register_sessions(instance, [(animal, s) for s in sessions])
    for session in sessions:
        for asset in assets:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset, partition=session_partition_key(animal, session))
            )


def requested(result, asset):
    return sorted(result.get_requested_partitions(dg.AssetKey(asset)))


@pytest.fixture
def automation(tmp_path):
    """A temporary instance with a champion detector and a first tick of the automation conditions."""
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("spine_detector"))
        state = {"cursor": dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor, "sensor": None}

        def tick():
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state["cursor"])
            state["cursor"] = result.cursor
            return result

        def sensor():
            context = dg.build_sensor_context(
                instance=instance,
                cursor=state["sensor"],
                definitions=defs,
                resources={"lake": DataLake(root=str(tmp_path)), "alignment": AlignmentSettings()},
            )
            result = animal_sensor(context)
            if isinstance(result, dg.SkipReason):
                return []
            state["sensor"] = result.cursor
            for request in result.run_requests:  # no tracks yet: both animal assets are stale
                assert request.asset_selection == [dg.AssetKey("spine_tracks"), dg.AssetKey("spine_dynamics")]
            return sorted(r.partition_key for r in result.run_requests)

        yield instance, tick, sensor


def test_features_are_eager_per_session_and_animals_run_when_all_their_sessions_have_features(automation):
    instance, tick, sensor = automation
    materialize(instance, SESSION_ASSETS, "m1", ["day00", "day04"])
    materialize(instance, SESSION_ASSETS, "m2", ["day00", "day10"])
    assert instance.get_dynamic_partitions(SESSIONS.name) == ["m1/day00", "m1/day04", "m2/day00", "m2/day10"]
    result = tick()
    assert requested(result, "spine_features") == ["m1/day00", "m1/day04", "m2/day00", "m2/day10"]
    assert requested(result, "spine_tracks") == requested(result, "spine_dynamics") == []
    assert sensor() == []

    materialize(instance, ["spine_features"], "m1", ["day00", "day04"])
    materialize(instance, ["spine_features"], "m2", ["day00"])
    assert sensor() == ["m1"]  # m2 waits for the features of m2/day10
    assert sensor() == []
    materialize(instance, ["spine_features"], "m2", ["day10"])
    assert sensor() == ["m2"]
    assert tick().total_requested == 0


def test_a_new_session_of_one_animal_updates_only_that_animal(automation):
    instance, tick, sensor = automation
    materialize(instance, [*SESSION_ASSETS, "spine_features"], "m1", ["day00", "day04"])
    materialize(instance, [*SESSION_ASSETS, "spine_features"], "m2", ["day00", "day10"])
    tick()
    assert sensor() == ["m1", "m2"]
    materialize(instance, SESSION_ASSETS, "m2", ["day14"])
    assert requested(tick(), "spine_features") == ["m2/day14"]
    assert sensor() == []
    materialize(instance, ["spine_features"], "m2", ["day14"])
    assert sensor() == ["m2"]
