"""The DuckLake feature store of the distributed configuration: a catalog database and a folder of Parquet files.

``SYNAPFLOW_STORE=ducklake:<catalog>`` selects it, where ``<catalog>`` is DuckLake's own metadata name:

- ``postgres:<libpq connection string>`` (``dbname=features host=db port=5432 user=synapflow``; the password
  from ``PGPASSWORD`` or ``~/.pgpass``, never in the setting): many writers on many machines;
- ``sqlite:<file>``: many writer processes on one machine (or a shared disk);
- ``<file>.ducklake``: a DuckDB file, one process at a time.

``SYNAPFLOW_STORE_DATA`` names where the data files go: a folder, or an ``s3://bucket/prefix`` reached with the
standard AWS variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...). Every writer commits its own
transaction; a partition's replace is one DuckLake snapshot, and conflicting commits are retried.

The DuckDB extensions come from the PyPI packages ``duckdb-extension-<name>`` of the installed DuckDB version
(``pip install 'synapflow_assets[scale]'``) and are loaded from their files: nothing is downloaded at run time.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import duckdb
from filelock import FileLock

from ..environment import Environment
from .connection import StoreError, connect_read_only

T = TypeVar("T")
PREFIX = "ducklake:"
ALIAS = "lake"
_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "httpfs": "duckdb_extension_httpfs",
}
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_PASSWORD = re.compile(r"(password\s*=\s*)\S+", re.I)


def extension_file(name: str) -> Path:
    """The file of DuckDB extension ``name`` in its installed PyPI package (for this DuckDB version).

    Raises
    ------
    StoreError
        When the package is not installed or holds no build for this DuckDB version.
    """
    package = _PACKAGES[name]
    wanted = f"duckdb-extension-{package.removeprefix('duckdb_extension_').replace('_', '-')}=={duckdb.__version__}"
    try:
        module = importlib.import_module(package)
    except ImportError as error:
        raise StoreError(f"a DuckLake store needs the {name} extension: pip install '{wanted}'") from error
    found = Path(next(iter(module.__path__))) / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not found.is_file():
        raise StoreError(f"{found}: no {name} extension for DuckDB {duckdb.__version__}; pip install '{wanted}'")
    return found


def load_extensions(connection: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> None:
    """``LOAD`` each extension from its package's file (see :func:`extension_file`)."""
    for name in names:
        connection.execute(f"LOAD '{extension_file(name)}'")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class DuckLake:
    """A DuckLake store: its catalog (DuckLake's metadata name, after ``ducklake:``) and its data path.

    Parameters
    ----------
    catalog : str
        ``postgres:<conninfo>``, ``sqlite:<file>`` or a DuckDB file.
    data_path : str
        The folder or ``s3://`` prefix of the data files.
    """

    catalog: str
    data_path: str

    def __str__(self) -> str:
        return PREFIX + _PASSWORD.sub(r"\1***", self.catalog)

    @property
    def kind(self) -> str:
        """``postgres``, ``sqlite`` or ``duckdb``: the database holding the catalog."""
        head = self.catalog.partition(":")[0]
        return head if head in ("postgres", "sqlite") else "duckdb"

    @property
    def catalog_file(self) -> Path | None:
        """The catalog's file (None for PostgreSQL)."""
        if self.kind == "postgres":
            return None
        return Path(self.catalog.removeprefix("sqlite:"))

    @property
    def remote(self) -> bool:
        return "://" in self.data_path

    def extensions(self) -> tuple[str, ...]:
        """The extensions a connection loads."""
        scanner = {"postgres": ("postgres_scanner",), "sqlite": ("sqlite_scanner",)}.get(self.kind, ())
        return ("ducklake", *scanner, *(("httpfs",) if self.remote else ()))

    def exists(self) -> bool:
        """Whether the catalog has been created (a PostgreSQL catalog is asked; unreachable raises StoreError)."""
        if self.catalog_file is not None:
            return self.catalog_file.exists()
        try:
            self.connect(read_only=True).close()
        except StoreError as error:
            if "connect" in str(error).lower():
                raise
            return False
        return True

    def connect(self, *, read_only: bool = False, config: dict | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with the lake attached as ``lake`` (its default database).

        A writer's connection creates a missing catalog; a read-only one attaches with ``READ_ONLY``. Rows always
        go to Parquet files (``DATA_INLINING_ROW_LIMIT 0``): rows inlined in a PostgreSQL catalog would need columns
        named ``xmin`` and ``xmax``, which PostgreSQL reserves.

        Raises
        ------
        StoreError
            When an extension is missing, or the catalog or data path cannot be opened.
        """
        connection = duckdb.connect(config={**NO_DOWNLOADS, **(config or {})})
        try:
            load_extensions(connection, self.extensions())
            if self.remote:
                connection.execute(s3_secret())
            if not read_only and self.catalog_file is not None:
                self.catalog_file.parent.mkdir(parents=True, exist_ok=True)
            if not read_only and not self.remote:
                Path(self.data_path).mkdir(parents=True, exist_ok=True)
            data_path = _quoted(self.data_path.rstrip("/") + "/")
            options = "READ_ONLY" if read_only else f"DATA_PATH {data_path}, DATA_INLINING_ROW_LIMIT 0"
            attach = f"ATTACH {_quoted(PREFIX + self.catalog)} AS {ALIAS} ({options})"
            if read_only:
                if self.catalog_file is not None:
                    _roll_back_hot_journal(self.catalog_file)
                connection.execute(attach)
            else:
                with FileLock(f"{self.catalog_file}.create.lock") if self.catalog_file else contextlib.nullcontext():
                    retrying(lambda: connection.execute(attach), retries=5)  # writers creating the catalog together
            connection.execute(f"USE {ALIAS}")
        except (duckdb.Error, StoreError) as error:
            connection.close()
            if isinstance(error, StoreError):
                raise
            detail = _PASSWORD.sub(r"\1***", str(error).strip().splitlines()[0] if str(error).strip() else "")
            raise StoreError(f"{self}: cannot open the DuckLake store ({detail})") from error
        return connection

    def allowed_paths(self) -> tuple[list[str], list[str]]:
        """What a sandboxed connection may still read: the data folder, and the catalog's file (if any)."""
        folder = self.data_path if self.remote else str(Path(self.data_path).resolve())
        files = [str(self.catalog_file.resolve())] if self.catalog_file is not None else []
        return [folder.rstrip("/") + "/"], files


def _roll_back_hot_journal(catalog: Path) -> None:
    """Roll back what a killed writer left in a SQLite catalog's journal: a read-only attach cannot, and fails.

    SQLite rolls a hot journal back on a writable connection's first read; a journal of a writer still
    committing is not hot (that writer holds its lock), and the read waits for it.
    """
    if not Path(f"{catalog}-journal").exists() or not os.access(catalog, os.W_OK):
        return
    with contextlib.closing(sqlite3.connect(catalog, timeout=60)) as recovery:
        recovery.execute("SELECT count(*) FROM sqlite_master").fetchone()


def s3_secret() -> str:
    """A ``CREATE SECRET`` for the object store of the standard AWS variables."""
    env = Environment.read()
    endpoint = env.s3_endpoint_url or ""
    parsed = urlparse(endpoint) if endpoint else None
    parts = {
        "TYPE": "s3",
        "KEY_ID": env.access_key_id,
        "SECRET": env.secret_access_key,
        "REGION": env.s3_region,
    }
    if parsed is not None:
        parts |= {"ENDPOINT": parsed.netloc, "URL_STYLE": "path", "USE_SSL": str(parsed.scheme == "https").lower()}
    fields = ", ".join(f"{k} {v if k in ('TYPE', 'USE_SSL') else _quoted(v)}" for k, v in parts.items())
    return f"CREATE OR REPLACE SECRET synapflow_s3 ({fields})"


def store_location(store: str | os.PathLike, data: str = "") -> Path | DuckLake:
    """The feature store named by the setting ``SYNAPFLOW_STORE`` (``store``) and ``SYNAPFLOW_STORE_DATA`` (``data``).

    A plain path is the embedded DuckDB file; ``ducklake:<catalog>`` is a :class:`DuckLake`.

    Raises
    ------
    StoreError
        For a ``ducklake:`` setting without a catalog or without ``SYNAPFLOW_STORE_DATA``.
    """
    if isinstance(store, DuckLake):
        return store
    text = str(store)
    if not text.startswith(PREFIX):
        return Path(text)
    catalog = text.removeprefix(PREFIX).strip()
    shown = PREFIX + _PASSWORD.sub(r"\1***", catalog)
    if not catalog or catalog in ("postgres:", "sqlite:"):
        raise StoreError(
            f"SYNAPFLOW_STORE={shown}: name the catalog (ducklake:postgres:<conninfo>, ducklake:sqlite:<file> or "
            "ducklake:<file>.ducklake)"
        )
    if not data:
        raise StoreError(
            f"SYNAPFLOW_STORE={shown}: a DuckLake store needs SYNAPFLOW_STORE_DATA, the folder or s3:// prefix of "
            "its data files"
        )
    return DuckLake(catalog, data)


RETRIES = 30
CONFLICT_SIGNS = (
    "transaction conflict",
    "write-write conflict",
    "database is locked",
    "duplicate key value",
    "could not serialize access",
    "already exists",
)
"""What DuckLake and its catalog databases say when a commit collided with another writer's."""
"""How many times a transaction that conflicted with another writer's commit is run again."""


def is_conflict(error: Exception) -> bool:
    """Whether a DuckDB error is a DuckLake commit that conflicted with another writer's (worth running again)."""
    text = str(error).lower()
    return any(sign in text for sign in CONFLICT_SIGNS)


def retrying(attempt: Callable[[], T], *, retries: int = RETRIES) -> T:
    """``attempt()``, run again (after a short random pause) while it fails with a commit conflict."""
    for tries in range(retries):
        try:
            return attempt()
        except duckdb.Error as error:
            if not is_conflict(error) or tries == retries - 1:
                raise
            time.sleep(random.uniform(0.05, 0.1 * 2 ** min(tries, 5)))
    raise AssertionError("unreachable")


def create_tables(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    views: str,
    stamp: Callable[[duckdb.DuckDBPyConnection], None] = lambda _: None,
) -> None:
    """Create the store's tables and views, and ``stamp`` their version, in one transaction when the catalog lacks
    any table of ``schema`` (writers starting together: one commits, the others find the tables when they run
    again)."""
    wanted = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema, re.I))

    def create(connection: duckdb.DuckDBPyConnection) -> None:
        connection.execute(schema)
        connection.execute(views)
        stamp(connection)

    def attempt() -> None:
        found = connection.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [ALIAS]).fetchall()
        if wanted <= {name for (name,) in found}:
            return
        in_transaction(connection, lambda: create(connection))

    retrying(attempt)


def in_transaction(connection: duckdb.DuckDBPyConnection, body: Callable[[], T]) -> T:
    """``body()`` in one transaction: committed, or rolled back on any error (also a failed commit)."""
    connection.execute("BEGIN TRANSACTION")
    try:
        result = body()
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT has ended the transaction already
            connection.execute("ROLLBACK")
        raise
    return result


def connect_store_read_only(store: Path | DuckLake) -> duckdb.DuckDBPyConnection:
    """A read-only connection to either backend, for the package's own reads (not sandboxed; see
    :mod:`.sql_sandbox` for users' queries)."""
    return store.connect(read_only=True) if isinstance(store, DuckLake) else connect_read_only(Path(store))
