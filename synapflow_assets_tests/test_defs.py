"""A snapshot of the whole Dagster definitions: assets, partitions, dependencies, checks, jobs, sensors, schedules
and resources, compared with ``snapshots/definitions.json``.

A change to what runs shows up here as a diff in review. When the change is intended, regenerate the snapshot
with ``SYNAPFLOW_UPDATE_SNAPSHOTS=1 .venv/bin/pytest synapflow_assets_tests/test_defs.py`` and commit it.
"""

import difflib
import json
import os
from pathlib import Path

import dagster as dg

from synapflow_assets.definitions import defs
from synapflow_assets.defs.catalog import build_definitions
from synapflow_assets.defs.staleness import asset_graph

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
UPDATE = "SYNAPFLOW_UPDATE_SNAPSHOTS"


def _partitions(partitions_def) -> str | None:
    if partitions_def is None:
        return None
    name = getattr(partitions_def, "name", None)
    return f"{type(partitions_def).__name__}({name})" if name else type(partitions_def).__name__


def describe(definitions: dg.Definitions) -> dict:
    """The definitions as plain, sorted data (what the snapshot holds)."""
    graph = definitions.resolve_asset_graph()
    repository = definitions.get_repository_def()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "kind": "materializable" if node.is_materializable else "external",
            "partitions": _partitions(node.partitions_def),
            "deps": {
                parent.to_user_string(): type(graph.get_partition_mapping(key, parent)).__name__
                for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string())
            },
            "automation": condition.get_label() if condition is not None else None,
        }
    checks = {
        f"{check.asset_key.to_user_string()}:{check.name}": {"blocking": graph.get(check).blocking}
        for check in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name))
    }
    jobs = {
        job.name: {
            "executor": job.executor_def.name,
            "selection": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
            "tags": dict(sorted(job.tags.items())),
        }
        for job in sorted(definitions.resolve_all_job_defs(), key=lambda j: j.name)
    }
    sensors = {}
    for sensor in sorted(repository.sensor_defs, key=lambda s: s.name):
        selection = sensor.asset_selection
        sensors[sensor.name] = {
            "type": type(sensor).__name__,
            "jobs": sorted(t.job_name for t in sensor.targets),
            "assets": sorted(k.to_user_string() for k in selection.resolve(graph)) if selection else [],
            "default_status": sensor.default_status.name,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
        }
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "job": schedule.job_name,
            "default_status": schedule.default_status.name,
        }
        for schedule in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    resources = {name: type(value).__name__ for name, value in sorted(definitions.resources.items())}
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": jobs,
        "sensors": sensors,
        "schedules": schedules,
        "resources": resources,
    }


def serialised(definitions: dg.Definitions) -> str:
    return json.dumps(describe(definitions), indent=2, sort_keys=True) + "\n"


def test_the_definitions_match_the_snapshot():
    current = serialised(defs)
    if os.environ.get(UPDATE) == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
    recorded = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if current != recorded:
        diff = "".join(
            difflib.unified_diff(
                recorded.splitlines(keepends=True), current.splitlines(keepends=True), str(SNAPSHOT), "current"
            )
        )
        raise AssertionError(
            f"the Dagster definitions differ from {SNAPSHOT.name}:\n{diff}\nIf the change is intended, regenerate it "
            f"with {UPDATE}=1 .venv/bin/pytest synapflow_assets_tests/test_defs.py and commit the file."
        )


def test_the_snapshot_is_stable():
    assert serialised(build_definitions()) == serialised(defs)


def test_another_executor_changes_only_the_executor_of_the_jobs():
    """The distributed configuration (`defs.distributed`) differs only in the executor of its jobs."""
    other = describe(build_definitions(executor=dg.multiprocess_executor))
    expected = describe(defs)
    for job in ("process_sessions", "update_animals"):
        assert other["jobs"][job].pop("executor") == "multiprocess"
        assert expected["jobs"][job].pop("executor") == "in_process"
    assert other == expected


def test_the_staleness_graph_is_the_definitions_graph():
    graph, resolved = asset_graph(), defs.resolve_asset_graph()
    assert graph.get_all_asset_keys() == resolved.get_all_asset_keys()
    for key in resolved.get_all_asset_keys():
        assert graph.get(key).parent_keys == resolved.get(key).parent_keys
        assert graph.get(key).partitions_def == resolved.get(key).partitions_def
