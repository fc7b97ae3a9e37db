"""One data root, one Dagster instance: `<data root>/dagster`.

The command line keeps the instance inside the data root it works on, so
that `ingest --data A` and `ingest --data B` never share run history or data
versions (a version recorded for one root would make the other's outputs look
up to date). The repository's `dagster.yaml` (DAGSTER_HOME = the repository,
used by `make ui`) points at `data/dagster`: the instance of the default root.
"""

import os
from pathlib import Path

import dagster as dg
import yaml
from filelock import FileLock

from ..store.locations import StorageError, is_remote

TEMPLATE = {
    "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
    "concurrency": {"runs": {"max_concurrent_runs": 2}, "pools": {"default_limit": 1}},
    "run_monitoring": {
        "enabled": True,
        "start_timeout_seconds": 180,
        "poll_interval_seconds": 30,
        "max_resume_run_attempts": 0,
        "free_slots_after_run_end_seconds": 30,
    },
    "telemetry": {"enabled": False},
}
"""What every instance of ours has besides its folders (kept equal to the repository's `dagster.yaml`)."""


def instance_config(home: Path) -> dict:
    """The `dagster.yaml` of an instance kept in `home`."""
    home = Path(home).resolve()
    return {
        "storage": {"sqlite": {"base_dir": str(home / "storage")}},
        "local_artifact_storage": {
            "module": "dagster.core.storage.root",
            "class": "LocalArtifactStorage",
            "config": {"base_dir": str(home)},
        },
        "compute_logs": {
            "module": "dagster.core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(home / "compute_logs")},
        },
        **TEMPLATE,
    }


def instance_home(data_root: str | Path) -> Path:
    """Where the instance of a data root lives: `<root>/dagster`, or `DAGSTER_HOME` for an object-store root."""
    if is_remote(data_root):
        if not os.environ.get("DAGSTER_HOME"):
            raise StorageError(
                f"{data_root}: an object-store data root needs a shared Dagster instance; set DAGSTER_HOME "
                "to a folder whose dagster.yaml names it (e.g. deploy/postgres/dagster.yaml)"
            )
        return Path(os.environ["DAGSTER_HOME"])
    return Path(data_root) / "dagster"


def open_instance(data_root: str | Path) -> dg.DagsterInstance:
    """The instance of a data root, created with our settings when it does not exist yet
    (for an object-store root: the instance of `DAGSTER_HOME`, which must exist)."""
    if is_remote(data_root):
        home = instance_home(data_root)
        if not (home / "dagster.yaml").is_file():
            raise StorageError(
                f"{home}/dagster.yaml: missing; an object-store data root needs a shared instance "
                "(copy deploy/postgres/dagster.yaml there)"
            )
        return dg.DagsterInstance.from_config(str(home))
    home = instance_home(data_root)
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(home / ".create.lock"):  # two commands creating the storage at once would both migrate it
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(yaml.safe_dump(instance_config(home), sort_keys=False))
        return dg.DagsterInstance.from_config(str(home))
