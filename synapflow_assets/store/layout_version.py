"""Layout versions of a data root: the feature store's schema stamp, and the one line that refuses an older root.

A data root holds a Dagster instance (`defs.layout`) and a feature store, each
stamped with the layout version it was written in. A new one is created at the
current version; an older one is refused by every ingest, sensor tick and store
writer with :func:`upgrade_line`, and brought to the current version once by
``python -m synapflow_assets upgrade`` (no migration runs on those paths).

The store's stamp is the table ``schema_version``; a store without it is
schema 1 (written before the stamp: columns added over time, ``upgrade.sql``).
"""

from pathlib import Path

import duckdb

from .connection import StoreError, damaged_store

SCHEMA_VERSION = 2
"""The schema ``schema.sql`` and ``views.sql`` create; a change to them needs a new version and its step."""
UPGRADES = {1: (Path(__file__).with_name("upgrade.sql")).read_text()}
"""``{version: SQL}`` bringing a store from ``version`` to the next one (run between schema.sql and views.sql)."""


class OutdatedDataRoot(StoreError):
    """A data root (its instance or feature store) written by an older SynapFlow: run ``upgrade`` once."""


def upgrade_line(root: str | Path, what: str) -> str:
    """The one line that refuses an older data root, naming it and the command that upgrades it."""
    return (
        f"{root}: data root made by an older SynapFlow ({what}); run "
        f"`python -m synapflow_assets upgrade --data {root}` once, then run again"
    )


def stored_version(connection: duckdb.DuckDBPyConnection) -> int:
    """The schema version stamped in an open store (1: a store written before the stamp)."""
    try:
        found = connection.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    except duckdb.CatalogException:
        return 1
    return int(found[0]) if found and found[0] is not None else 1


def stamp(connection: duckdb.DuckDBPyConnection, version: int = SCHEMA_VERSION) -> None:
    """Record the schema version of an open store (in the caller's transaction, if any)."""
    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, stamped_at TIMESTAMPTZ)")
    connection.execute("DELETE FROM schema_version")
    connection.execute("INSERT INTO schema_version VALUES (?, now())", [version])


def check_version(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a store of another schema version: :func:`upgrade_line` for an older one; a file DuckDB cannot
    read with the one line of a damaged store."""
    try:
        version = stored_version(connection)
    except duckdb.Error as error:
        raise damaged_store(Path(path), error) from None
    if version < SCHEMA_VERSION:
        raise OutdatedDataRoot(
            upgrade_line(
                Path(path).parent,
                f"feature store {Path(path).name} at schema {version}, this version needs {SCHEMA_VERSION}",
            )
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: feature store of a newer SynapFlow (schema {version}, this version knows {SCHEMA_VERSION}); "
            "use that version, or a copy of the data root"
        )


def upgrade_schema(connection: duckdb.DuckDBPyConnection, schema: str, views: str) -> int | None:
    """Bring an open store to :data:`SCHEMA_VERSION` in one transaction: the tables it lacks, each version's step,
    the views, the stamp. The version it was at, or None when it was current (nothing is written)."""
    version = stored_version(connection)
    if version >= SCHEMA_VERSION:
        return None
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.execute(schema)
        for step in range(version, SCHEMA_VERSION):
            connection.execute(UPGRADES[step])
        connection.execute(views)
        stamp(connection)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return version
