"""An animal with nothing new is not rerun, and a run that finds nothing new keeps its plot, table and schema.

The first tick of a new daemon (after `make demo`, then `make ui`) evaluates
`animal_sensor` with an empty cursor: it must not launch animals whose
dynamics are already current. Real instance, real ingest, real feature store.
"""

import dagster as dg

from synapflow_assets.definitions import defs
from synapflow_assets.defs.animal_sensor import animal_sensor
from synapflow_assets.defs.feature_assets import spine_dynamics
from synapflow_assets.defs.resources import AlignmentSettings, DataLake, DetectionSettings
from synapflow_assets.defs.staleness import latest_materialization
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

SHOWN = ("dynamics_plot", "per_session", "size_trajectories", "dagster/row_count", "dagster/column_schema")


def sensor_requests(instance, lake, cursor=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"lake": lake, "alignment": AlignmentSettings()},
    )
    result = animal_sensor(context)
    return [] if isinstance(result, dg.SkipReason) else result.run_requests


def test_a_new_daemon_requests_no_unchanged_animal_and_an_unchanged_run_keeps_its_metadata(tmp_path, instance):
    lake = DataLake(root=str(tmp_path))
    for sim in simulate_animal(SimulationParams(shape=(12, 160, 160)), n_sessions=2, seed=3):
        write_session(sim, tmp_path / "landing", "m1", f"day{4 * sim.index:02d}")
    assert not process_landed(instance, lake, detection=DetectionSettings(source="imported")).failed
    first = latest_materialization(instance, spine_dynamics.key, "m1")[1].metadata
    assert all(name in first for name in SHOWN)

    assert sensor_requests(instance, lake) == []  # empty cursor: the first tick of a new daemon

    again = dg.materialize([spine_dynamics], instance=instance, resources={"lake": lake}, partition_key="m1")
    latest = latest_materialization(instance, spine_dynamics.key, "m1")[1].metadata
    assert again.success and latest["unchanged"].value is True and latest["rows_written"].value == 0
    for name in SHOWN:
        assert name in latest, name
    assert latest["dagster/row_count"].value == first["dagster/row_count"].value == 2
    assert latest["dagster/column_schema"].value == first["dagster/column_schema"].value
    assert latest["per_session"].value.records == first["per_session"].value.records
