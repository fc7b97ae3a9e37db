"""The feature store's commands: ``sql`` (read-only queries), ``export`` (per-session CSVs) and ``compact``
(a DuckLake store's files)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..environment import Environment
from .app import CommandError, app, default_store

STORE_DEFAULT = "$SYNAPFLOW_DATA/features.duckdb, else data/features.duckdb"


def run_sql(
    *,
    query: str | None,
    store: str,
    file: str | None = None,
    format: str = "table",
    out: str | None = None,
    limit: int = 40,
    timeout: float | None = None,
    memory: str | None = None,
    snapshot: str | None = None,
) -> int:
    """Run a read-only query on the feature store and print or write its result.

    Parameters
    ----------
    query : str or None
        The SQL (None: read it from ``file``).
    store : str
        The feature-store file, or ``ducklake:<catalog>`` (data path from ``SYNAPFLOW_STORE_DATA``).
    file : str, optional
        A file holding the SQL.
    format : {"table", "csv", "json", "parquet"}, optional
    out : str, optional
        Write the result here instead of standard output (needed for parquet).
    limit : int, optional
        Rows shown in table format.
    timeout : float, optional
        Seconds before the query is stopped (default: the sandbox's).
    memory : str, optional
        The query's memory limit, e.g. ``512MB`` (default: the sandbox's).
    snapshot : str, optional
        Query this snapshot of the store's data root (``<root>/snapshots/NAME``, checked against its manifest)
        instead of the store, with the store's views.

    Returns
    -------
    int
        0; a refused query raises :class:`CommandError` (exit 2, or 1 for an error of DuckDB's).
    """
    import duckdb
    import polars as pl

    from ..store.ducklake import store_location
    from ..store.sql_sandbox import MEMORY_LIMIT, TIMEOUT_SECONDS, run_read_query

    try:
        sql = Path(file).read_text() if file else query
    except OSError as error:
        raise CommandError(f"cannot read the query file {file} ({error.strerror})") from error
    if not sql:
        raise CommandError("give a query or --file")
    try:
        if snapshot:
            from ..tools.snapshot_query import opened_snapshot

            with opened_snapshot(Path(store).parent, snapshot) as frozen:
                result = run_read_query(
                    frozen / "features.duckdb",
                    sql,
                    timeout_seconds=timeout or TIMEOUT_SECONDS,
                    memory_limit=memory or MEMORY_LIMIT,
                )
        else:
            result = run_read_query(
                store_location(store, Environment.read().store_data),
                sql,
                timeout_seconds=timeout or TIMEOUT_SECONDS,
                memory_limit=memory or MEMORY_LIMIT,
            )
    except duckdb.Error as error:
        raise CommandError(" ".join(str(error).split()) or type(error).__name__, exit_code=1) from error
    if format == "table":
        with pl.Config(
            tbl_rows=limit, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=40, tbl_hide_dataframe_shape=True
        ):
            print(result)
        return 0
    if format == "parquet" and not out:
        raise CommandError("--format parquet needs --out FILE")
    writers: dict[str, Callable[[Any], Any]] = {
        "csv": result.write_csv,
        "json": result.write_ndjson,
        "parquet": result.write_parquet,
    }
    writers[format](out or sys.stdout.buffer)
    return 0


@app.command("sql", help="Query the feature store (read-only).")
@click.argument("query", required=False)
@click.option("--file", help="read the SQL from this file")
@click.option("--format", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True)
@click.option("--out", help="write the result here instead of standard output")
@click.option("--limit", type=int, default=40, show_default=True, help="rows shown in table format")
@click.option("--store", default=default_store, show_default=STORE_DEFAULT)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=30.0,
    show_default=True,
    help="seconds before the query is stopped (it also stops when an ingest needs the store)",
)
@click.option(
    "--memory", default="512MB", show_default=True, help="most memory the query may use (nothing spills to disk)"
)
@click.option("--snapshot", help="query this snapshot (<data>/snapshots/NAME beside the store) instead of the store")
def sql(**options) -> int:
    """``sql [QUERY] [--file F] [--format table|csv|json|parquet] [--out F] [--limit N] [--store F]
    [--timeout S] [--memory M] [--snapshot NAME]``."""
    return run_sql(**options)


@app.command("export", help="Per-session CSVs in the reference column layout, with features.")
@click.option("--out", required=True)
@click.option("--store", default=default_store, show_default=STORE_DEFAULT)
def export(*, out: str, store: str) -> int:
    """Write one CSV per session of the feature store under ``out``."""
    from ..store.export import export_sessions

    paths = export_sessions(Path(store), Path(out))
    print(f"{len(paths)} session CSVs under {out}")
    return 0


@app.command("compact", help="Merge a DuckLake store's small files and delete the ones no snapshot reads.")
@click.option(
    "--store",
    default=lambda: Environment.read().store or default_store(),
    show_default="$SYNAPFLOW_STORE, else the data root's features.duckdb",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="keep snapshots (time travel) and replaced files this long; a query running longer would lose its files",
)
def compact(*, store: str, keep_days: float) -> int:
    """Compact the DuckLake named by ``store`` (data path from ``SYNAPFLOW_STORE_DATA``); a DuckDB file has
    nothing to compact."""
    import duckdb

    from ..store.ducklake import DuckLake, store_location
    from ..store.lake_compaction import ON_A_FILE
    from ..store.lake_compaction import compact as compact_lake

    location = store_location(store, Environment.read().store_data)
    if not isinstance(location, DuckLake):
        print(f"{location}: {ON_A_FILE}")
        return 0
    if not location.exists():
        raise CommandError(f"{location}: no DuckLake catalog there yet; nothing to compact")
    try:
        done = compact_lake(location, keep_days=keep_days)
    except duckdb.Error as error:
        raise CommandError(f"{location}: compaction failed ({' '.join(str(error).split())})", exit_code=1) from error
    print(done.line(location))
    return 0
