"""A sandbox for the SQL users run on the feature store (``python -m synapflow_assets sql``).

Two layers, each enough on its own for the attacks we know of:

1. Every statement is parsed by DuckDB first and only read queries run: ``SELECT`` (including
   ``FROM ...``, ``WITH``, ``VALUES``, ``SHOW``, ``DESCRIBE``, ``SUMMARIZE``, ``PIVOT``), ``EXPLAIN`` of
   those, and the catalogue pragmas in :data:`READ_PRAGMAS`. ``ATTACH``, ``COPY``, ``EXPORT``,
   ``IMPORT``, ``INSTALL``, ``LOAD``, ``SET``, ``CALL``, ``CREATE``, ``INSERT``, ... are refused before
   anything runs.
2. The store is opened read-only with :data:`SANDBOX_CONFIG`: no file, network or extension access
   (so ``read_csv('/etc/passwd')``, ``glob('/root/*')`` or ``'other.parquet'`` fail), and the
   configuration locked so a query cannot switch any of it back on.
"""

import re
import threading
import time
from pathlib import Path

import duckdb
import polars as pl

from .connection import StoreError, connect_read_only, damaged_store, is_damage, writer_waiting
from .ducklake import DuckLake

#: The DuckDB settings of a sandboxed connection (all exist in DuckDB 1.5.5; ``lock_configuration`` is given
#: at connect time rather than by ``SET`` so a second connection of the same process can share the instance).
SANDBOX_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "threads": 1,
    "temp_directory": "",
    "max_temp_directory_size": "0 bytes",
    "lock_configuration": True,
}
#: What one sandboxed query may use: memory (DuckDB's ``memory_limit``; no spill to disk: ``temp_directory`` is
#: off) and time (then it is interrupted); a query also stops as soon as a writer waits for the store.
MEMORY_LIMIT = "512MB"
TIMEOUT_SECONDS = 30.0

#: Pragmas that only describe the catalogue or the engine.
READ_PRAGMAS = frozenset(
    {
        "show_tables",
        "show_tables_expanded",
        "table_info",
        "show",
        "version",
        "database_size",
        "database_list",
        "storage_info",
        "functions",
        "collations",
        "platform",
        "user_agent",
    }
)

_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_EXPLAIN = re.compile(r"explain\b\s*(?:analy[sz]e\b\s*)?(?:\([^)]*\)\s*)?", re.I)
_PRAGMA = re.compile(r"pragma\s+(\w+)\s*(?:\([^;]*\))?\s*;?\s*$", re.I | re.S)


_FILE_FUNCTIONS = re.compile(
    r"\b(read_(?:blob|text|csv\w*|json\w*|ndjson\w*|parquet|xlsx)|parquet_\w+|sniff_csv|glob|st_read|"
    r"delta_scan|iceberg_\w+)\s*\(",
    re.I,
)
"""Table functions that read files: refused by name, since DuckDB lets them read the database file itself (its
raw pages hold deleted rows) even with external access off."""


_IMPORT = re.compile(r"\bimport\s+database\b", re.I)
_PIVOT = re.compile(r"\b(?:un)?pivot\b", re.I)
_PIVOT_PARTS = (
    duckdb.StatementType.CREATE,
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.TRANSACTION,
)
"""What DuckDB 1.5 splits a ``PIVOT`` without an ``IN`` list into, without their text: the enum of the pivoted
values (``CREATE TYPE``, in the connection's temporary catalog), the query, and for ``EXPLAIN`` a transaction."""


class QueryRejected(StoreError):
    """A statement that is not a read query, or one that reached for files, network or extensions."""


def _body(sql: str) -> str:
    """The statement without leading blanks and comments."""
    leading = _LEADING.match(sql)
    return sql[leading.end() :] if leading else sql


def _keyword(sql: str) -> str:
    """The statement's first word, upper case (``COPY``, ``INSTALL``, ...)."""
    word = re.match(r"[A-Za-z_]+", _body(sql))
    return word.group(0).upper() if word else "?"


def _refusal(statement: duckdb.Statement) -> str | None:
    """What a statement is (``"COPY"``) when it is not a read query, else None."""
    text = _body(statement.query)
    kind = statement.type
    if kind == duckdb.StatementType.SELECT:
        return None
    if kind == duckdb.StatementType.MULTI and _keyword(text) == "PIVOT":
        return None
    if kind == duckdb.StatementType.PRAGMA:
        pragma = _PRAGMA.match(text)
        if pragma and pragma.group(1).lower() in READ_PRAGMAS:
            return None
        return f"PRAGMA {pragma.group(1).lower()}" if pragma else _keyword(text)
    if kind == duckdb.StatementType.EXPLAIN:
        explain = _EXPLAIN.match(text)
        if explain:
            try:
                inner = duckdb.extract_statements(text[explain.end() :])
            except duckdb.Error:
                inner = []
            if len(inner) == 1:
                refused = _refusal(inner[0])
                return None if refused is None else f"EXPLAIN {refused}"
        return "EXPLAIN"
    return _keyword(text)


def check_read_only(sql: str) -> list[duckdb.Statement]:
    """Parse ``sql`` with DuckDB and refuse it unless every statement is a read query.

    Parameters
    ----------
    sql : str
        One or more statements separated by semicolons.

    Returns
    -------
    list of duckdb.Statement
        The parsed statements (empty for blank or comment-only text).

    Raises
    ------
    QueryRejected
        For the first statement that is not a read query, as
        ``sql: only read queries are allowed on the read-only store (got COPY)``.
    duckdb.ParserException
        When the text is not valid SQL.
    """
    if _IMPORT.search(sql):  # DuckDB 1.5 reads the folder's schema.sql while parsing IMPORT DATABASE
        raise QueryRejected("sql: only read queries are allowed on the read-only store (got IMPORT)")
    statements = duckdb.extract_statements(sql)
    pivot = _PIVOT.search(sql) is not None
    for statement in statements:
        if pivot and not statement.query.strip() and statement.type in _PIVOT_PARTS:
            if reader := _FILE_FUNCTIONS.search(sql):
                raise QueryRejected(f"sql: queries may not read files ({reader.group(1)}); query the store's tables")
            continue
        refused = _refusal(statement)
        if refused is not None:
            raise QueryRejected(f"sql: only read queries are allowed on the read-only store (got {refused})")
        if reader := _FILE_FUNCTIONS.search(statement.query):
            raise QueryRejected(f"sql: queries may not read files ({reader.group(1)}); query the store's tables")
    return statements


def connect_sandboxed(
    path: Path | DuckLake, *, wait_seconds: float = 5.0, memory_limit: str = MEMORY_LIMIT
) -> duckdb.DuckDBPyConnection:
    """Open the feature store read-only with :data:`SANDBOX_CONFIG` (no files, network, extensions or spill to
    disk; one thread; ``memory_limit``; locked).

    Parameters
    ----------
    path : Path or DuckLake
        The DuckDB file, or a DuckLake store (attached read-only; files readable only under its data path).
    wait_seconds : float, optional
        How long to retry while a writer holds the file.
    memory_limit : str, optional
        DuckDB's memory limit of the connection (e.g. ``512MB``).

    Raises
    ------
    StoreError
        When the file is missing, corrupt, stays locked, or is open in this process with other settings.
    """
    if isinstance(path, DuckLake):
        return _sandboxed_lake(path, memory_limit)
    return connect_read_only(path, wait_seconds, config={**SANDBOX_CONFIG, "memory_limit": memory_limit})


def _sql_list(texts: list[str]) -> str:
    return "[" + ", ".join("'" + text.replace("'", "''") + "'" for text in texts) + "]"


def _sandboxed_lake(lake: DuckLake, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """A DuckLake attached read-only, then the sandbox's settings: files only under the lake's own paths."""
    unlocked = {k: v for k, v in SANDBOX_CONFIG.items() if k not in ("enable_external_access", "lock_configuration")}
    connection = lake.connect(read_only=True, config={**unlocked, "memory_limit": memory_limit})
    directories, files = lake.allowed_paths()
    connection.execute(f"SET allowed_directories = {_sql_list(directories)}")
    connection.execute(f"SET allowed_paths = {_sql_list(files)}")
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


def _watch(connection: duckdb.DuckDBPyConnection, path: Path | None, timeout: float, done: threading.Event, why: list):
    """Interrupt the connection's query after ``timeout`` seconds, or as soon as a writer waits for the store
    (``path``; None: never)."""
    deadline = time.monotonic() + timeout
    while not done.wait(0.1):
        if time.monotonic() > deadline:
            why.append(f"it ran over its time limit of {timeout:g} s")
        elif path is not None and writer_waiting(path):
            why.append("a writer (an ingest or a run) needs the store; query again when it has finished")
        else:
            continue
        connection.interrupt()
        return


def run_read_query(
    path: Path | DuckLake,
    sql: str,
    *,
    wait_seconds: float = 5.0,
    timeout_seconds: float = TIMEOUT_SECONDS,
    memory_limit: str = MEMORY_LIMIT,
    yield_to_writer: bool = True,
) -> pl.DataFrame:
    """Check ``sql`` with :func:`check_read_only`, run it in a sandboxed connection, return the last result.

    Parameters
    ----------
    path : Path or DuckLake
        The DuckDB file of the feature store, or a DuckLake store.
    sql : str
        Read queries; with several statements the result of the last is returned.
    wait_seconds : float, optional
        How long to retry while a writer holds the file.
    timeout_seconds : float, optional
        The query is interrupted after this long (and whenever a writer waits for the store).
    memory_limit : str, optional
        The most memory the query may use; nothing spills to disk.
    yield_to_writer : bool, optional
        Stop the query when a writer waits for the store (default).

    Returns
    -------
    polars.DataFrame
        The result (empty when the text holds no statement).

    Raises
    ------
    QueryRejected
        For a statement that is not a read query, one that tried to reach files, network or extensions, or
        one stopped by its time or memory limit or for a writer.
    StoreError
        When the store cannot be opened.
    duckdb.Error
        For any other error of the query (syntax, unknown table, ...).
    """
    check_read_only(sql)
    connection = connect_sandboxed(path, wait_seconds=wait_seconds, memory_limit=memory_limit)
    done, why = threading.Event(), list[str]()
    watched = Path(path) if yield_to_writer and not isinstance(path, DuckLake) else None
    watcher = threading.Thread(target=_watch, args=(connection, watched, timeout_seconds, done, why), daemon=True)
    watcher.start()
    try:
        relation = connection.sql(sql)
        return relation.pl() if relation is not None else pl.DataFrame()
    except duckdb.PermissionException as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise QueryRejected(f"sql: queries may not use files, network or extensions ({detail})") from error
    except duckdb.InterruptException as error:
        raise QueryRejected(f"sql: query stopped: {why[0] if why else 'interrupted'}") from error
    except duckdb.OutOfMemoryException as error:
        raise QueryRejected(
            f"sql: query stopped: it needs more than its memory limit of {memory_limit} (nothing spills to disk)"
        ) from error
    except duckdb.Error as error:
        if is_damage(error) and not isinstance(path, DuckLake):
            raise damaged_store(Path(path), error) from error
        raise
    finally:
        done.set()
        watcher.join()
        connection.close()
