"""Opening the feature store file: waiting for other processes, telling damage from a held lock."""

import os
import time
from pathlib import Path

import duckdb

from ..errors import SynapFlowError


class StoreError(SynapFlowError, RuntimeError):
    """The store is missing, corrupt or locked."""


WRITER_WAIT_SECONDS = 120.0
"""How long a writer waits for readers (`sql`, `export`, a report) to release the store."""


def _is_lock_error(error: Exception) -> bool:
    text = str(error).lower()  # not merely "lock": a damaged file's errors name its "block"s
    return isinstance(error, duckdb.IOException) and ("set lock on file" in text or "conflicting lock" in text)


DAMAGE_SIGNS = ("corrupt database file", "could not read enough bytes", "checksum")
"""What DuckDB says when a block of the file is damaged or missing (found only when a query reads it)."""


def is_damage(error: Exception) -> bool:
    """Whether a DuckDB error reports a damaged or truncated file rather than a problem of the query."""
    return any(sign in str(error).lower() for sign in DAMAGE_SIGNS)


def damaged_store(path: Path, error: Exception) -> StoreError:
    """The one-line error of a damaged store, saying how to rebuild it."""
    return StoreError(_damaged(path, error))


def _damaged(path: Path, error: Exception) -> str:
    if "newer version of duckdb" in str(error).lower():
        return (
            f"{path}: written by a newer DuckDB than {duckdb.__version__}; copy it to this version's format "
            "(docs/scaling.md, 'DuckDB version') or move it aside and run `python -m synapflow_assets ingest`"
        )
    return (
        f"{path}: not a readable feature store ({str(error).splitlines()[0]}); move it aside and run "
        "`python -m synapflow_assets ingest`, which rebuilds every partition that is missing from it"
    )


def writer_marker(path: Path) -> Path:
    """The file a writer keeps beside the store while it waits for readers: sandboxed queries stop when they see
    it (:mod:`.sql_sandbox`), so a query never makes a writer fail."""
    return Path(f"{path}.writer-waiting")


def writer_waiting(path: Path) -> bool:
    """Whether a live writer process waits for the store (a marker left by a killed one does not count)."""
    marker = writer_marker(path)
    try:
        pid = int(marker.read_text() or 0)
        fresh = time.time() - marker.stat().st_mtime < WRITER_WAIT_SECONDS + 30
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return fresh
    except (OSError, OverflowError):
        return False
    return fresh


def connect_when_free(path: Path, wait_seconds: float, busy: str, on_wait=None, **options) -> duckdb.DuckDBPyConnection:
    """A connection (``options`` of `duckdb.connect`), retried with backoff while another process holds the file.

    A held lock is waited for (up to `wait_seconds`), then reported as ``<path>: <busy>``, never as damage;
    a file DuckDB cannot read is reported with how to rebuild it. ``on_wait`` is called once, before the
    first wait.
    """
    deadline, pause = time.monotonic() + wait_seconds, 0.1
    while True:
        try:
            return duckdb.connect(str(path), **options)
        except duckdb.ConnectionException as error:
            raise StoreError(
                f"{path}: cannot open ({error}); close the other connection of this process to it first"
            ) from error
        except duckdb.Error as error:
            if not _is_lock_error(error):
                raise StoreError(_damaged(path, error)) from error
            if time.monotonic() > deadline:
                raise StoreError(f"{path}: {busy}") from error
            if on_wait is not None:
                on_wait, _ = None, on_wait()
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def connect_read_only(
    path: Path, wait_seconds: float = 5.0, *, config: dict | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the store read-only, retrying while a writer holds the lock.

    ``config`` holds extra DuckDB settings for the connection (see ``sql_sandbox.SANDBOX_CONFIG``).

    Raises
    ------
    StoreError
        When the file is missing or corrupt (saying how to rebuild it), stays locked, or is already open in
        this process with other settings.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(
            f"{path}: no feature store yet; run `make demo` or materialize spine_features and spine_dynamics to "
            "build it"
        )
    return connect_when_free(
        path,
        wait_seconds,
        f"in use by a writer for over {wait_seconds:.0f} s (an ingest or a run); the store is intact: query again "
        "when it has finished",
        read_only=True,
        config=dict(config or {}),
    )
