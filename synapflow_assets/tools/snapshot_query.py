"""Reading a citable snapshot (:mod:`.snapshot`): its Parquet bundle checked against its manifest and opened
as a temporary DuckDB database with the store's tables and views (for ``sql --snapshot`` and ``report
--snapshot``), and what changed between two snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from ..store.feature_store import SCHEMA, VIEWS
from .snapshot import SnapshotError, snapshot_folder

COMPARED = ("n_in_view", "gained", "lost", "n_surviving", "formation_rate", "elimination_rate", "survival_fraction")
"""The ``dynamics`` columns whose changes :func:`snapshot_changes` lists."""


def checked_manifest(root: Path, name: str) -> tuple[Path, dict]:
    """The folder and manifest of snapshot ``name`` of data root ``root``, every file checked against the
    manifest's SHA-256.

    Raises
    ------
    SnapshotError
        When there is no such snapshot, or a file is missing or differs from the manifest.
    """
    folder = snapshot_folder(root, name)
    if not (folder / "manifest.json").is_file():
        known = sorted(p.name for p in (Path(root) / "snapshots").glob("[!.]*")) if folder.parent.is_dir() else []
        raise SnapshotError(f"no snapshot {name!r} under {folder.parent} (known: {', '.join(known) or 'none'})")
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {t["file"]: t["sha256"] for t in manifest["tables"].values()}
    for file, digest in files.items():
        path = folder / file
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise SnapshotError(f"snapshot {name!r}: {file} is missing or differs from its manifest")
    return folder, manifest


def build_database(folder: Path, manifest: dict, target: Path) -> Path:
    """Write the DuckDB file ``target`` holding the snapshot's tables (in the store's schema, so that older
    snapshots get the columns they lack as null) and the store's views."""
    with duckdb.connect(str(target)) as connection:
        connection.execute(SCHEMA)
        for table, entry in manifest["tables"].items():
            path = str(folder / entry["file"]).replace("'", "''")
            connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM read_parquet('{path}')")
        connection.execute(VIEWS)
    return target


@contextmanager
def opened_snapshot(root: Path, name: str) -> Iterator[Path]:
    """A temporary data root for snapshot ``name``: its ``features.duckdb`` built from the bundle, ``landing``
    and ``volumes`` those of ``root`` (for the settings and projections). Removed on exit."""
    folder, manifest = checked_manifest(root, name)
    with tempfile.TemporaryDirectory(prefix=f"snapshot-{name}-") as scratch:
        frozen = Path(scratch)
        build_database(folder, manifest, frozen / "features.duckdb")
        for part in ("landing", "volumes"):
            if (Path(root) / part).exists():
                os.symlink(Path(root).resolve() / part, frozen / part)
        yield frozen


def snapshot_changes(root: Path, name: str, since: str) -> list[str]:
    """What changed from snapshot ``since`` to snapshot ``name``: animals and sessions added or removed, and
    per animal and session the :data:`COMPARED` numbers of ``dynamics`` that differ (``old -> new``).

    Returns
    -------
    list of str
        One line per change; empty when the dynamics are the same.
    """
    tables = {}
    for which, snapshot in (("new", name), ("old", since)):
        folder, manifest = checked_manifest(root, snapshot)
        tables[which] = pl.read_parquet(folder / manifest["tables"]["dynamics"]["file"]).select(
            "animal", "session", "session_index", *COMPARED
        )
    new, old = tables["new"], tables["old"]
    lines = [
        f"{animal}/{session}: {what} since {since}"
        for frame, other, what in ((new, old, "added"), (old, new, "removed"))
        for animal, session in frame.join(other, on=["animal", "session"], how="anti")
        .sort("animal", "session_index")
        .select("animal", "session")
        .iter_rows()
    ]
    both = new.join(old, on=["animal", "session"], suffix="_old")
    long = (
        both.with_columns(pl.col(c).cast(pl.Float64) for c in (*COMPARED, *(f"{c}_old" for c in COMPARED)))
        .unpivot(index=["animal", "session", "session_index"], on=list(COMPARED), variable_name="what")
        .join(
            both.unpivot(index=["animal", "session"], on=[f"{c}_old" for c in COMPARED], variable_name="what")
            .with_columns(pl.col("what").str.strip_suffix("_old"), pl.col("value").cast(pl.Float64))
            .rename({"value": "old"}),
            on=["animal", "session", "what"],
        )
        .filter(pl.col("value").round(6).ne_missing(pl.col("old").round(6)))
        .sort("animal", "session_index", "what")
    )
    lines += [
        f"{a}/{s}: {w} {_number(o)} -> {_number(v)}"
        for a, s, w, v, o in long.select("animal", "session", "what", "value", "old").iter_rows()
    ]
    return lines


def _number(value: float | None) -> str:
    if value is None:
        return "none"
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
