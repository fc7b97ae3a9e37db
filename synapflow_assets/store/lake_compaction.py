"""Compaction of a DuckLake feature store: every partition's replace writes small Parquet files and keeps the old
ones for time travel, so a lab with thousands of sessions accumulates many small files. ``compact`` merges the live
files, expires the snapshots older than a retention time and deletes the files no snapshot reads any more."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from .ducklake import ALIAS, DuckLake, retrying

_FILES = f"__ducklake_metadata_{ALIAS}.ducklake_data_file"


ON_A_FILE = "a DuckDB file reuses its free space itself; nothing to compact"
"""What compaction says of a store that is one DuckDB file (``compact`` and the weekly job)."""


@dataclass(frozen=True)
class Compaction:
    """What a compaction did.

    Attributes
    ----------
    live_files_before, live_files_after : int
        Data files the current snapshot reads.
    snapshots_expired : int
    files_deleted : int
        Data and delete files removed from the data path.
    """

    live_files_before: int
    live_files_after: int
    snapshots_expired: int
    files_deleted: int

    def line(self, lake: DuckLake) -> str:
        return (
            f"{lake}: {self.live_files_before} -> {self.live_files_after} live data files, "
            f"{self.snapshots_expired} snapshots expired, {self.files_deleted} files deleted"
        )


def _live_files(connection: duckdb.DuckDBPyConnection) -> int:
    row = connection.execute(f"SELECT count(*) FROM {_FILES} WHERE end_snapshot IS NULL").fetchone()
    return int(row[0]) if row else 0


def compact(lake: DuckLake, *, keep_days: float) -> Compaction:
    """Merge the lake's live data files, expire its snapshots older than ``keep_days`` and delete the files that were
    scheduled for deletion more than ``keep_days`` ago (a reader older than that would lose its files).

    Each step is its own DuckLake transaction, run again when it conflicts with a writer's commit; the tables'
    rows are unchanged.

    Parameters
    ----------
    lake : DuckLake
    keep_days : float
        Retention of old snapshots and of replaced files (0: keep only the current snapshot).

    Returns
    -------
    Compaction
    """
    if keep_days < 0:
        raise ValueError(f"keep_days must be >= 0, got {keep_days}")
    older_than = f"now() - INTERVAL {float(keep_days) * 86400:.0f} SECOND"
    connection = lake.connect()
    try:
        before = _live_files(connection)
        retrying(lambda: connection.execute(f"CALL ducklake_merge_adjacent_files('{ALIAS}')").fetchall())
        expired = retrying(
            lambda: connection.execute(
                f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => {older_than})"
            ).fetchall()
        )
        deleted = retrying(
            lambda: connection.execute(
                f"CALL ducklake_cleanup_old_files('{ALIAS}', older_than => {older_than})"
            ).fetchall()
        )
        return Compaction(before, _live_files(connection), len(expired), len(deleted))
    finally:
        connection.close()
