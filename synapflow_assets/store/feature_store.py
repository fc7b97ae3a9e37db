"""The DuckDB feature store: idempotent partition writes with lineage, read-only queries for users."""

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl
from filelock import FileLock

from ..failpoints import failpoint
from ..tracking.corrections import CORRECTION_SCHEMA
from .atomic_files import sibling
from .connection import (
    WRITER_WAIT_SECONDS,
    StoreError,
    connect_read_only,
    connect_when_free,
    damaged_store,
    is_damage,
    writer_marker,
    writer_waiting,
)
from .ducklake import DuckLake, create_tables, in_transaction, retrying
from .layout_version import check_version, stamp, upgrade_schema
from .sql_sandbox import run_read_query

__all__ = [
    "WRITER_WAIT_SECONDS",
    "FeatureStore",
    "StoreError",
    "connect_read_only",
    "damaged_store",
    "is_damage",
    "lineage_columns",
    "query",
    "stored_partitions",
    "writer_waiting",
]

SCHEMA = (Path(__file__).with_name("schema.sql")).read_text()
VIEWS = (Path(__file__).with_name("views.sql")).read_text()
KEYED_TABLES = ("spines", "spine_features", "tracks")
T = TypeVar("T")


def lineage_columns(
    run_id: str, code_version: str, model: str | None, model_version: str | None, input_versions: dict
) -> dict:
    """The lineage written on every row."""
    return {
        "run_id": run_id,
        "code_version": code_version,
        "model": model,
        "model_version": model_version,
        "input_versions": json.dumps(input_versions, sort_keys=True),
        "computed_at": datetime.now(UTC),
    }


def _create(path: Path) -> None:
    """Create an empty store so that it appears whole: written beside, renamed into place, under a lock
    (writers starting together would otherwise open a file another is still creating)."""
    with FileLock(f"{path}.create.lock"):
        if path.exists():
            return
        tmp = sibling(path)
        with duckdb.connect(str(tmp)) as connection:  # with its tables and views: a reader never sees it empty
            connection.execute(SCHEMA)
            connection.execute(VIEWS)
            stamp(connection)
        os.replace(tmp, path)


def _connect_writer(path: Path, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """A read-write connection once no other process holds the file (created when missing)."""
    if not path.exists():
        _create(path)
    marker = writer_marker(path)
    try:
        return connect_when_free(
            path,
            wait_seconds,
            f"still in use by another process after {wait_seconds:.0f} s (an export, a report or another run); "
            "the store is intact: run again when that process has finished",
            on_wait=lambda: marker.write_text(str(os.getpid())),
        )
    finally:
        marker.unlink(missing_ok=True)


class FeatureStore:
    """Read-write access for the assets (one writer process at a time).

    Parameters
    ----------
    path : Path or DuckLake
        The DuckDB file, created with its tables and views (at the current schema version) when missing; or a
        DuckLake store (:mod:`.ducklake`: many writer processes, each replace one transaction).

    Raises
    ------
    layout_version.OutdatedDataRoot
        When the file was written at an older schema (``python -m synapflow_assets upgrade`` brings it to this one).
    """

    def __init__(self, path: Path | DuckLake, *, wait_seconds: float = WRITER_WAIT_SECONDS):
        if isinstance(path, DuckLake):
            self.path: Path | DuckLake = path
            self.connection = path.connect()
            try:
                create_tables(self.connection, SCHEMA, VIEWS, stamp)
                check_version(self.connection, Path(str(path)))
            except BaseException:
                self.connection.close()
                raise
            return
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = _connect_writer(self.path, wait_seconds)
        try:
            check_version(self.connection, self.path)
        except BaseException:
            self.connection.close()
            raise

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.connection.close()

    def corrections(self, animal: str) -> pl.DataFrame:
        """The corrections a person made to an animal's track statuses (see ``tracking.corrections``)."""
        found = self.connection.sql(
            "SELECT * FROM corrections WHERE animal = $1 ORDER BY corrected_at", params=[animal]
        ).pl()
        return (
            found.select(CORRECTION_SCHEMA.keys()).cast(CORRECTION_SCHEMA)
            if len(found)
            else pl.DataFrame(schema=CORRECTION_SCHEMA)
        )

    def add_corrections(self, corrections: pl.DataFrame) -> int:
        """Append corrections (:data:`tracking.corrections.CORRECTION_SCHEMA`) in one transaction."""
        self.connection.register("incoming", corrections.to_arrow())
        try:
            self.connection.execute("INSERT INTO corrections BY NAME SELECT * FROM incoming")
        finally:
            self.connection.unregister("incoming")
        return len(corrections)

    def stored_versions(self, table: str, animal: str, session: str | None = None) -> set[tuple[str, str]]:
        """The distinct ``(input_versions, code_version)`` of a partition's rows (empty if it has none)."""
        sql = f"SELECT DISTINCT input_versions, code_version FROM {table} WHERE animal = ?" + (
            " AND session = ?" if session else ""
        )
        return set(self.connection.execute(sql, [animal] + ([session] if session else [])).fetchall())

    def is_current(self, table: str, animal: str, session: str | None, input_versions: dict, code_version: str) -> bool:
        """Whether a partition's rows were computed from exactly these inputs by this code."""
        return self.stored_versions(table, animal, session) == {
            (json.dumps(input_versions, sort_keys=True), code_version)
        }

    def drop_partition(self, tables: tuple[str, ...], animal: str, session: str | None) -> dict[str, int]:
        """Delete a partition's rows from each table, in one transaction; the rows deleted per table."""
        condition = "animal = ?" + (" AND session = ?" if session is not None else "")
        keys = [animal] + ([session] if session is not None else [])

        def drop() -> dict[str, int]:
            dropped = {}
            for table in tables:
                found = self.connection.execute(f"SELECT count(*) FROM {table} WHERE {condition}", keys).fetchone()
                self.connection.execute(f"DELETE FROM {table} WHERE {condition}", keys)
                dropped[table] = int(found[0]) if found else 0
            return dropped

        return self._transaction(drop)

    def replace_partition(
        self, tables: dict[str, pl.DataFrame], animal: str, session: str | None, lineage: dict
    ) -> dict[str, int]:
        """Delete a partition's rows from each table and insert the new ones, in one transaction.

        Returns the number of rows written per table.
        """
        condition = "animal = ?" + (" AND session = ?" if session is not None else "")
        keys = [animal] + ([session] if session is not None else [])

        def replace() -> dict[str, int]:
            written = {}
            for table, frame in tables.items():
                self.connection.execute(f"DELETE FROM {table} WHERE {condition}", keys)
                rows = frame.with_columns(**{k: pl.lit(v) for k, v in lineage.items()})
                if session is not None and "session" not in rows.columns:
                    rows = rows.with_columns(session=pl.lit(session))
                rows = rows.with_columns(animal=pl.lit(animal))
                self.connection.register("incoming", rows.to_arrow())
                key = ", hash(animal, session, spine_id) AS spine_key" if table in KEYED_TABLES else ""
                self.connection.execute(f"INSERT INTO {table} BY NAME SELECT *{key} FROM incoming")
                self.connection.unregister("incoming")
                written[table] = len(rows)
            failpoint("store_transaction")
            return written

        written = self._transaction(replace)
        failpoint("after_commit")
        return written

    def _transaction(self, body: Callable[[], T]) -> T:
        """``body()`` in one transaction; on a DuckLake, run again while its commit conflicts with another's."""
        if isinstance(self.path, DuckLake):
            return retrying(lambda: in_transaction(self.connection, body))
        self.connection.execute("BEGIN TRANSACTION")
        try:
            result = body()
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        return result


def upgrade_store(path: Path, *, wait_seconds: float = WRITER_WAIT_SECONDS) -> int | None:
    """Bring the store file at ``path`` to the current schema (``python -m synapflow_assets upgrade``): the version
    it was at, or None when it was current or does not exist (a new store is created at the current version)."""
    path = Path(path)
    if not path.exists():
        return None
    with _connect_writer(path, wait_seconds) as connection:
        return upgrade_schema(connection, SCHEMA, VIEWS)


def query(path: Path | DuckLake, sql: str, wait_seconds: float = 5.0, *, yield_to_writer: bool = True) -> pl.DataFrame:
    """Run read queries on the store in the SQL sandbox and return the (last) result.

    Statements other than read queries, and queries reaching for files, network or extensions, raise
    ``sql_sandbox.QueryRejected`` (a :class:`StoreError`); see :mod:`synapflow_assets.store.sql_sandbox`.
    ``yield_to_writer=False`` (the pipeline's own short reads) is not interrupted when a writer waits.
    """
    return run_read_query(path, sql, wait_seconds=wait_seconds, yield_to_writer=yield_to_writer)


def stored_partitions(path: Path | DuckLake, table: str) -> set[tuple]:
    """``(animal, session)`` pairs (or ``(animal,)`` for per-animal tables) that have rows; empty without a store."""
    if not (path.exists() if isinstance(path, DuckLake) else Path(path).exists()):
        return set()
    columns = "animal" if table == "dynamics" else "animal, session"
    return set(query(path, f"SELECT DISTINCT {columns} FROM {table}", yield_to_writer=False).iter_rows())
