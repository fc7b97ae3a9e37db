"""Citable snapshots: the dynamics, tracks, features and their lineage of a data root frozen into a read-only
Parquet bundle with a manifest, so a paper cites numbers that do not move when a new session lands.

A snapshot is ``<root>/snapshots/<name>/``: one Parquet file per table (``dynamics``, ``tracks``,
``spine_features``, ``sessions``, ``corrections``), ``lineage.parquet`` (one row per table and partition:
run id, code version, model and version, input versions, computed at) and ``manifest.json`` (animals, rows,
SHA-256 of every file, code and model versions, each animal's settings, the package version). Rows are
sorted and nothing depends on the clock, so the same store always gives the same bytes; a snapshot, once
made, is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import polars as pl

from ..errors import SynapFlowError
from ..settings import load_settings
from ..store.ducklake import DuckLake, connect_store_read_only

TABLES = ("dynamics", "tracks", "spine_features", "sessions", "corrections")
"""What a snapshot freezes, in the order of the manifest."""
LINEAGE_COLUMNS = ("run_id", "code_version", "model", "model_version", "input_versions", "computed_at")
FORMAT = "synapflow-snapshot/1"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SnapshotError(SynapFlowError, ValueError):
    """A snapshot that cannot be made: a bad name, no such animal, or a frozen snapshot the store no longer
    matches."""


@dataclass(frozen=True)
class Snapshot:
    """What :func:`make_snapshot` did."""

    folder: Path
    manifest: dict
    created: bool
    """False: the snapshot existed already with exactly these bytes, and was left as it was."""


def snapshot_folder(root: Path, name: str) -> Path:
    """Where snapshot ``name`` of data root ``root`` lives; raises `SnapshotError` on a name that is not a plain
    file name (letters, digits, ``.``, ``_``, ``-``; at most 64)."""
    if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
        raise SnapshotError(f"snapshot name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    return Path(root) / "snapshots" / name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(store: Path | DuckLake, animals: list[str] | None) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """Every table of the animals (default: all with sessions), sorted on all columns, from one read-only view
    of the store; and the animals."""
    connection = connect_store_read_only(store)
    try:
        known = [r[0] for r in connection.sql("SELECT DISTINCT animal FROM sessions ORDER BY animal").fetchall()]
        chosen = sorted(set(animals)) if animals else known
        missing = [a for a in chosen if a not in known]
        if missing:
            raise SnapshotError(f"no sessions of animal {missing[0]!r} in the feature store ({len(known)} known)")
        if not chosen:
            raise SnapshotError("the feature store holds no session yet; run ingest first")
        tables = {
            name: connection.sql(
                f"SELECT * FROM {name} WHERE list_contains($1, animal) ORDER BY ALL", params=[chosen]
            ).pl()
            for name in TABLES
        }
    finally:
        connection.close()
    return tables, chosen


def lineage_table(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per table and partition (animal, and session where the table has one) with its lineage."""
    parts = []
    for name, table in tables.items():
        if not set(LINEAGE_COLUMNS) <= set(table.columns):
            continue
        session = pl.col("session") if name not in ("dynamics", "tracks") else pl.lit(None, pl.String)
        parts.append(
            table.select(pl.lit(name).alias("table"), "animal", session.alias("session"), *LINEAGE_COLUMNS).unique()
        )
    lineage = pl.concat(parts)
    return lineage.sort(lineage.columns, nulls_last=True)


def _manifest(name: str, animals: list[str], root: Path, tables: dict, lineage: pl.DataFrame, hashes: dict) -> dict:
    computed = lineage["computed_at"].drop_nulls().to_list()
    return {
        "format": FORMAT,
        "name": name,
        "animals": animals,
        "as_of": max(computed).isoformat() if computed else None,
        "package": {"name": "synapflow_assets", "version": metadata.version("synapflow_assets")},
        "tables": {
            table: {"file": f"{table}.parquet", "rows": len(frame), "sha256": hashes[f"{table}.parquet"]}
            for table, frame in tables.items()
        },
        "lineage": {
            "file": "lineage.parquet",
            "sha256": hashes["lineage.parquet"],
            "runs": lineage["run_id"].n_unique(),
            "code_versions": {
                table: sorted(lineage.filter(pl.col("table") == table)["code_version"].drop_nulls().unique())
                for table in tables
                if table in set(lineage["table"])
            },
            "models": sorted(
                f"{m} version {v}"
                for m, v in lineage.select("model", "model_version").unique().drop_nulls("model").iter_rows()
            ),
        },
        "settings": {a: load_settings(Path(root) / "landing", a).model_dump(mode="json") for a in animals},
    }


def _write(folder: Path, name: str, root: Path, tables: dict, animals: list[str]) -> dict:
    folder.mkdir(parents=True)
    lineage = lineage_table(tables)
    for table, frame in {**tables, "lineage": lineage}.items():
        frame.write_parquet(folder / f"{table}.parquet", compression="zstd", statistics=True)
    hashes = {p.name: _sha256(p) for p in sorted(folder.glob("*.parquet"))}
    manifest = _manifest(name, animals, root, tables, lineage, hashes)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _freeze(folder: Path) -> None:
    """Make a snapshot read-only: files ``r--r--r--``, the folder ``r-xr-xr-x``."""
    readable = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    for path in folder.iterdir():
        path.chmod(readable)
    folder.chmod(readable | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _same_bytes(a: Path, b: Path) -> list[str]:
    """The files that differ between two folders (by name and content)."""
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    return [n for n in names if not ((a / n).is_file() and (b / n).is_file() and _sha256(a / n) == _sha256(b / n))]


def make_snapshot(
    root: Path, name: str, *, animals: list[str] | None = None, store: Path | DuckLake | None = None
) -> Snapshot:
    """Freeze the dynamics, tracks, features and lineage of ``animals`` (default: all) as snapshot ``name``.

    Parameters
    ----------
    root : Path
        A local data root (``features.duckdb``, ``landing/``).
    name : str
        The snapshot's name: its folder ``<root>/snapshots/<name>``.
    animals : list of str, optional
        The animals to include (default: every animal with sessions in the store).
    store : Path or DuckLake, optional
        The feature store (default: ``<root>/features.duckdb``).

    Returns
    -------
    Snapshot

    Raises
    ------
    SnapshotError
        On a bad name, an animal with no sessions, or when snapshot ``name`` exists and the store no longer
        gives its bytes (a snapshot is frozen: make a new one under another name).
    StoreError
        When the feature store is missing, corrupt or stays locked by a writer.
    """
    root = Path(root)
    folder = snapshot_folder(root, name)
    tables, chosen = _tables(root / "features.duckdb" if store is None else store, animals)
    staging = folder.with_name(f".{name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        manifest = _write(staging, name, root, tables, chosen)
        if folder.exists():
            differ = _same_bytes(staging, folder)
            if differ:
                raise SnapshotError(
                    f"snapshot {name!r} exists and is frozen; the store has changed since it was made "
                    f"({', '.join(differ)} differ): choose another name"
                )
            return Snapshot(folder, json.loads((folder / "manifest.json").read_text()), created=False)
        _freeze(staging)
        os.rename(staging, folder)
    finally:
        if staging.exists():
            staging.chmod(0o755)
            shutil.rmtree(staging, ignore_errors=True)
    return Snapshot(folder, manifest, created=True)
