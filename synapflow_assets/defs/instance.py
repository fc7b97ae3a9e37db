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

from ..environment import Environment
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
        home = Environment.read().dagster_home
        if not home:
            raise StorageError(
                f"{data_root}: an object-store data root needs a shared Dagster instance; set DAGSTER_HOME "
                "to a folder whose dagster.yaml names it (e.g. deploy/postgres/dagster.yaml)"
            )
        return Path(home)
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
        else:
            retarget(config, home)
        seen = home / ".nux" / "nux.yaml"  # the web UI's newsletter pop-up would cover a new user's first pages
        if not seen.exists():
            seen.parent.mkdir(exist_ok=True)
            seen.write_text("seen: 1\n")
        return dg.DagsterInstance.from_config(str(home))


_OWN_PATHS = ("storage", "local_artifact_storage", "compute_logs")


def _stored_home(config: dict) -> Path | None:
    """The instance folder our `dagster.yaml` layout names (its SQLite storage is `<home>/storage`), or None
    for a configuration of another kind (Postgres, a hand-written one): that is left alone."""
    base = ((config.get("storage") or {}).get("sqlite") or {}).get("base_dir")
    if not isinstance(base, str) or Path(base).name != "storage":
        return None
    return Path(base).parent


def retarget(config_path: Path, home: Path) -> bool:
    """Point the instance of a copied or moved data root at its own folders.

    `dagster.yaml` holds absolute paths; after `cp -a A B` they would still name A's storage (B's runs would
    land in A's history) and after `mv A B` a folder that no longer exists (Dagster would create it outside the
    root). Its storage was copied or moved with the root, so the paths are rewritten to `home`: a copy keeps
    its own history from then on, a moved root keeps its history. True when the file was rewritten.
    """
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise StorageError(f"{config_path}: cannot read the instance settings ({error})") from None
    stored = _stored_home(config) if isinstance(config, dict) else None
    if stored is None or stored == home.resolve():
        return False
    config.update({key: instance_config(home)[key] for key in _OWN_PATHS})
    temporary = config_path.with_name(f".{config_path.name}.tmp-{os.getpid()}")
    temporary.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(temporary, config_path)
    return True
