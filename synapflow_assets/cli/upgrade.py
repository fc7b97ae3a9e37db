"""``upgrade``: bring a data root made by an older SynapFlow to this version's layout, once.

``ingest``, ``demo`` and the sensors only check the layout version (one line naming this command when the root is
older); the migrations run here: session partitions moved to ``animal/session``, materializations made before
their landed inputs were observed given that provenance, the feature store's columns and views.
"""

from __future__ import annotations

from .app import CommandError, app, check_data_root, data_option
from .ingest import settings_options, settings_resources, source_option

LOCK_WAIT_SECONDS = 60.0


@app.command(
    "upgrade",
    help="Bring a data root made by an older SynapFlow to this version's layout (its instance and feature store); "
    "give the settings flags and --source you ingest with.",
)
@data_option("data root (its instance DATA/dagster, its feature store)")
@settings_options
@source_option
def upgrade(*, data: str, **settings) -> int:
    """Upgrade ``DATA`` under its ingest lock; one line per step, or that there was nothing to do."""
    from filelock import FileLock, Timeout

    from ..defs.instance import open_instance
    from ..defs.layout import LAYOUT_VERSION, upgrade_data_root
    from ..defs.resources import lake_from_environment
    from ..store.layout_version import SCHEMA_VERSION

    resources = settings_resources(**settings)
    check_data_root(data)
    lake = lake_from_environment(data)
    lock = FileLock(lake.local_root / ".ingest.lock")
    try:
        lock.acquire(timeout=LOCK_WAIT_SECONDS)
    except Timeout:
        raise CommandError(f"{data}: an ingest of this data root is running; upgrade when it has finished") from None
    try:
        with open_instance(data) as instance:
            lines = upgrade_data_root(instance, lake, resources["imaging"], resources["detection"])
    finally:
        lock.release()
    if not lines:
        print(
            f"{data}: already at the current layout (instance layout {LAYOUT_VERSION}, feature store schema "
            f"{SCHEMA_VERSION}); nothing to do"
        )
    for line in lines:
        print(f"{data}: {line}")
    return 0
