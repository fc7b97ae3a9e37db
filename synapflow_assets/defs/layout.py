"""The layout version of a data root's Dagster instance: checked on every ingest and sensor tick, raised by
`upgrade`, the one place the migrations run (`partition_upgrade`, `provenance_upgrade`, the store's schema).

The instance keeps its version in Dagster's key-value store (``synapflow/layout_version``).
An instance without it is looked at once: when it holds nothing of an older layout
(a new instance, or one made by this version before the stamp existed) it is stamped,
without any migration; otherwise every ingest and tick refuses it with one line
(:func:`~synapflow_assets.store.layout_version.upgrade_line`) until ``upgrade`` ran.
"""

from pathlib import Path

import dagster as dg

from ..imaging.errors import InputError
from ..imaging.landing import scan_landing
from ..store.connection import StoreError, connect_read_only
from ..store.feature_store import upgrade_store
from ..store.layout_version import OutdatedDataRoot, check_version, upgrade_line
from .landed_inputs import observations, observe
from .partition_upgrade import old_layout, upgrade_partitions
from .partitions import session_partition_key
from .provenance_upgrade import READS, adopt_landed_inputs, lacks_provenance
from .resources import DataLake, DetectionSettings, ImagingSettings

LAYOUT_KEY = "synapflow/layout_version"
LAYOUT_VERSION = 3
"""1: written before the stamp, with `animal|session` partitions or materializations that point to no
observation of their landed input; 2: `animal/session` partitions, every input observed; 3: `spines_3d` also
observes its depth-linking settings (`depth_settings`; before, run config)."""


def stamped_version(instance: dg.DagsterInstance) -> int | None:
    """The layout version stamped on the instance (None: never stamped)."""
    value = instance.run_storage.get_cursor_values({LAYOUT_KEY}).get(LAYOUT_KEY)
    return int(value) if value else None


def stamp_instance(instance: dg.DagsterInstance) -> None:
    instance.run_storage.set_cursor_values({LAYOUT_KEY: str(LAYOUT_VERSION)})


def _unadopted(instance: dg.DagsterInstance) -> list[str]:
    """The session partitions with a materialization that points to no observation of its landed input."""
    partitions = set()
    for key in READS:
        partitions.update(instance.get_materialized_partitions(key))
    return sorted(p for p in partitions if "|" not in p and lacks_provenance(instance, p))


def instance_problem(instance: dg.DagsterInstance) -> str | None:
    """What is older in the instance than this version writes, or None (an unstamped instance holding nothing
    older is stamped here: the only time this looks further than the stamp)."""
    version = stamped_version(instance)
    if version == LAYOUT_VERSION:
        return None
    if version is None:
        if old_layout(instance):
            return "Dagster instance with animal|session partitions"
        if not (unadopted := _unadopted(instance)):
            stamp_instance(instance)
            return None
        return f"Dagster instance with materializations older than their landed-input observations ({unadopted[0]})"
    if version > LAYOUT_VERSION:
        raise StoreError(
            f"its Dagster instance is at layout {version}, newer than this SynapFlow knows ({LAYOUT_VERSION}); use "
            "that version, or a copy of the data root"
        )
    return f"Dagster instance at layout {version}, this version needs {LAYOUT_VERSION}"


def check_layout(instance: dg.DagsterInstance, lake: DataLake, *, store: bool = True) -> None:
    """Refuse a data root written by an older SynapFlow with one line naming it and ``upgrade``: its instance
    and, with ``store``, its feature-store file (when there is one)."""
    try:
        problem = instance_problem(instance)
    except StoreError as error:
        raise StoreError(f"{lake.root}: {error}") from None
    if problem:
        raise OutdatedDataRoot(upgrade_line(lake.root, problem))
    path = lake.store_path if store else None
    if isinstance(path, Path) and path.is_file():
        with connect_read_only(path) as connection:
            check_version(connection, path)


def upgrade_data_root(
    instance: dg.DagsterInstance,
    lake: DataLake,
    imaging: ImagingSettings | None = None,
    detection: DetectionSettings | None = None,
) -> list[str]:
    """Bring a data root to the current layout: its instance's partitions and provenance (the landed sessions
    are observed with these settings) and its feature store. One line per step taken; none when it was
    current."""
    lines = []
    if (previous := stamped_version(instance)) != LAYOUT_VERSION:
        if old_layout(instance):
            moved = upgrade_partitions(instance)
            lines.append(
                f"{len(moved)} session partitions moved to animal/session "
                f"({', '.join(moved[:6])}{' ...' if len(moved) > 6 else ''}); their history stays on the run pages"
            )
        lines.extend(_adopt_landed(instance, lake, imaging or ImagingSettings(), detection or DetectionSettings()))
        stamp_instance(instance)
        if previous is not None:
            lines.append(f"Dagster instance raised from layout {previous} to {LAYOUT_VERSION}")
    path = lake.store_path
    if isinstance(path, Path) and (version := upgrade_store(path)) is not None:
        lines.append(f"{path}: feature store upgraded from schema {version}")
    return lines


def _adopt_landed(
    instance: dg.DagsterInstance, lake: DataLake, imaging: ImagingSettings, detection: DetectionSettings
) -> list[str]:
    unadopted = set(_unadopted(instance))
    if not unadopted:
        return []
    sessions, _ = scan_landing(lake.landing)
    adopted, rerun, lines = 0, list[str](), list[str]()
    for item in sessions:
        partition = session_partition_key(item.animal, item.session)
        if partition not in unadopted:
            continue
        try:
            found = observations(item, imaging, detection, lake)
        except InputError as error:
            lines.append(f"{partition}: its settings are invalid ({error}); it runs again once they are fixed")
            found = []
        observe(instance, found)
        stale = adopt_landed_inputs(instance, partition, found)
        adopted += 1
        rerun.extend(f"{partition} {key.to_user_string()}" for key in stale)
    lines.insert(
        0,
        f"{adopted} session partitions given the provenance of their landed inputs"
        + (f"; changed since computed, run by the next ingest: {', '.join(rerun)}" if rerun else ""),
    )
    return lines
