"""Keeping a DuckLake feature store small: a weekly job merges its small data files, expires snapshots older than
the retention and deletes the files they held (``store.lake_compaction``, as ``python -m synapflow_assets compact``
does by hand). On the embedded DuckDB file it has nothing to do and says so."""

import dagster as dg

from ..store.ducklake import DuckLake
from ..store.lake_compaction import ON_A_FILE, compact
from .resources import DataLake

KEEP_DAYS = 7.0
"""Snapshots (time travel) and replaced files are kept this long: a query running longer would lose its files."""


@dg.op(description="Compact the DuckLake feature store of the data lake (nothing to do on a DuckDB file).")
def compact_feature_store(context: dg.OpExecutionContext, lake: DataLake) -> None:
    location = lake.store_path
    if not isinstance(location, DuckLake):
        context.log.info(f"{location}: {ON_A_FILE}")
        return
    if not location.exists():
        context.log.info(f"{location}: no DuckLake catalog there yet; nothing to compact")
        return
    context.log.info(compact(location, keep_days=KEEP_DAYS).line(location))


@dg.job(
    executor_def=dg.in_process_executor,
    description="Merge the feature store's small files and delete those no snapshot within a week reads.",
)
def compact_store():
    compact_feature_store()


weekly_compaction = dg.ScheduleDefinition(
    name="weekly_compaction",
    job=compact_store,
    cron_schedule="0 3 * * 0",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays at 03:00: `compact_store` (each partition's replace leaves small Parquet files).",
)
