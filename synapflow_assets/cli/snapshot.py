"""``snapshot``: freeze an animal's numbers, with their lineage, into a read-only Parquet bundle a paper can cite."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..environment import Environment
from .app import CommandError, app, data_option


@app.command(
    "snapshot",
    help="Freeze the dynamics, tracks, features and their lineage into a read-only Parquet bundle with a manifest.",
)
@click.option("--name", required=True, help="the snapshot's name (its folder under <data>/snapshots/)")
@click.option("--animal", multiple=True, help="animal to include (repeatable; default: all)")
@data_option()
def snapshot(*, name: str, animal: tuple[str, ...], data: str) -> int:
    """Write ``<data>/snapshots/<name>/`` (see ``tools/snapshot.py``); a snapshot is never rewritten. The tables
    come from ``<data>/features.duckdb``, or from the DuckLake of ``SYNAPFLOW_STORE=ducklake:...``."""
    from ..store.ducklake import PREFIX, store_location
    from ..store.locations import is_remote
    from ..tools.snapshot import TABLES, make_snapshot

    if is_remote(data):
        raise CommandError(f"{data}: `snapshot` reads a local data root; run it on a copy")
    start = time.perf_counter()
    env = Environment.read()
    lake = store_location(env.store, env.store_data) if env.store.startswith(PREFIX) else None
    made = make_snapshot(Path(data), name, animals=list(animal) or None, store=lake)
    rows = ", ".join(f"{made.manifest['tables'][table]['rows']} {table}" for table in TABLES)
    state = "written, read-only" if made.created else "unchanged (already frozen with these bytes)"
    print(
        f"snapshot {name} of {', '.join(made.manifest['animals'])}: {rows}; {made.folder} {state} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0
