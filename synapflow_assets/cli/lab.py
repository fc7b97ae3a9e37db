"""What a lab does with its results: ``review`` events, ``report`` in HTML, ``export-napari``."""

from __future__ import annotations

from pathlib import Path

import click

from .app import CommandError, app, data_option


def local_root(data: str, command: str) -> None:
    """Refuse an object-store data root: ``command`` reads local files."""
    from ..store.locations import is_remote

    if is_remote(data):
        raise CommandError(
            f"{data}: `{command}` reads a local data root; run it on a copy (e.g. aws s3 sync {data} ./lab)"
        )


def _apply_review(root: Path, answers: str, corrected_by: str | None) -> int:
    """Store the corrections of a filled ``review.csv`` and recompute the dynamics of their animals."""
    from ..defs.instance import open_instance
    from ..defs.resources import DataLake
    from ..imaging.errors import InputError
    from ..pipeline import recompute_dynamics
    from ..store.feature_store import FeatureStore, query
    from ..tools.review import read_review

    corrections = read_review(Path(answers), corrected_by=corrected_by)
    if not len(corrections):
        print(f"{answers}: no row has a corrected_status; nothing to apply")
        return 0
    if not (root / "features.duckdb").exists():
        raise InputError(root / "features.duckdb", "no feature store to correct (run ingest first, or pass --data)")
    with FeatureStore(root / "features.duckdb") as store:
        store.add_corrections(corrections)
    with open_instance(root) as instance:
        for animal in sorted(corrections["animal"].unique()):
            problem = recompute_dynamics(instance, DataLake(root=str(root)), animal)
            if problem:
                raise CommandError(f"{animal}: corrections stored, but spine_dynamics failed: {problem}", exit_code=1)
    matched = query(root / "features.duckdb", "SELECT count(*) FROM tracks WHERE corrected_by IS NOT NULL").item()
    print(
        f"{len(corrections)} corrections stored; {matched} track rows corrected; dynamics of "
        f"{', '.join(sorted(corrections['animal'].unique()))} recomputed"
    )
    if matched < len(corrections):
        raise CommandError(
            f"{len(corrections) - matched} corrections match no track row within 1 um of their place "
            "(another animal, session or data folder?); they stay stored and apply if that row returns",
            exit_code=1,
        )
    return 0


@app.command("review", help="Export the least confident events for checking, or apply the answers.")
@click.option("--animal", help="animal whose events to export")
@click.option("--out", help="folder for review.csv and the pictures")
@click.option("--limit", type=int, default=20, show_default=True, help="events to export, least confident first")
@click.option("--apply", metavar="FILE", help="read a filled review.csv back into the store and recompute dynamics")
@click.option("--by", help="who corrected (default: the login name)")
@click.option("--labels", metavar="FILE", help="write the corrected spines the detector missed as training boxes")
@data_option()
def review(
    *, animal: str | None, out: str | None, limit: int, apply: str | None, by: str | None, labels: str | None, data: str
) -> int:
    """Export events to review (``--animal --out``), training boxes (``--animal --labels``) or apply answers."""
    from ..tools.review import export_review, labels_from_corrections

    local_root(data, "review")
    root = Path(data)
    if apply:
        return _apply_review(root, apply, by)
    if not animal:
        raise CommandError("review needs --animal (to export) or --apply FILE")
    if labels:
        table = labels_from_corrections(root, animal)
        Path(labels).parent.mkdir(parents=True, exist_ok=True)
        table.write_csv(labels)
        print(
            f"{len(table)} training boxes from the corrections of {animal} in {labels} (train-detector --extra-labels)"
        )
        return 0
    if not out:
        raise CommandError("review --animal needs --out DIR (or --labels FILE)")
    table = export_review(root, animal, Path(out), limit=limit)
    print(
        f"{len(table)} events to review in {Path(out) / 'review.csv'} (pictures beside it): fill corrected_status "
        f"with present, new, eliminated, out_of_view or unconfirmed, then run review --apply {Path(out) / 'review.csv'}"
    )
    return 0


@app.command(
    "export-napari", expected=(ValueError,), help="Registered volumes, tracks and points of an animal for napari."
)
@click.option("--animal", required=True)
@click.option("--out", required=True)
@data_option()
def export_napari(*, animal: str, out: str, data: str) -> int:
    """Write the animal's volumes registered into the first session's frame, ``tracks.csv`` and ``points.csv``."""
    from ..defs.resources import DataLake
    from ..defs.track_assets import animal_alignments
    from ..store.feature_store import query
    from ..tools.napari_export import export_napari as write_napari

    local_root(data, "export-napari")
    lake = DataLake(root=data)
    safe = animal.replace("'", "''")
    tracks = query(lake.store_path, f"SELECT * FROM tracks WHERE animal = '{safe}'")
    sizes = query(lake.store_path, f"SELECT session, spine_id, size FROM spine_features WHERE animal = '{safe}'")
    sessions, steps, _ = animal_alignments(lake, animal)
    written = write_napari(Path(lake.root), animal, Path(out), [s.key for s in sessions], steps, tracks, sizes)
    print(
        f"{animal}.ome.zarr ({len(sessions)} sessions on its t axis, registered into one frame, in um), "
        f"tracks.csv and points.csv (um) in {out}; open with `napari {out}` (the synapflow reader plugin: "
        "pip install '.[napari]')"
    )
    return 0 if written else 1


@app.command("report", expected=(ValueError,), help="A self-contained HTML report of the animals' dynamics.")
@click.option("--out", required=True, help="HTML file to write")
@click.option("--animal", multiple=True, help="animal to include (repeatable; default: all)")
@click.option("--snapshot", help="render this snapshot (<data>/snapshots/NAME) instead of the live store")
@click.option("--since", help="with --snapshot: list what changed since this other snapshot")
@data_option()
def report(*, out: str, animal: tuple[str, ...], data: str, snapshot: str | None, since: str | None) -> int:
    """Write one HTML page with the dynamics, overlays, alignment and detector of the animals."""
    import polars as pl

    from ..defs.resources import DataLake
    from ..defs.track_assets import animal_alignments
    from ..store.feature_store import query
    from ..tools.report import build_report

    local_root(data, "report")
    if since and not snapshot:
        raise CommandError("--since needs --snapshot NAME")
    if snapshot:
        return _snapshot_report(Path(data), snapshot, since=since, out=Path(out), animals=list(animal))
    lake = DataLake(root=data)
    animals = (
        list(animal)
        or query(lake.store_path, "SELECT DISTINCT animal FROM sessions ORDER BY animal")["animal"].to_list()
    )
    alignments = {}
    for name in animals:
        sessions, aligned, passed = animal_alignments(lake, name)
        steps = [
            (a.key, b.key, step, ok) for a, b, step, ok in zip(sessions, sessions[1:], aligned, passed, strict=False)
        ]
        alignments[name] = pl.DataFrame(
            [
                {
                    "from": a,
                    "to": b,
                    "aligned": ok,
                    "rotation_deg": round(s.rotation_deg, 2),
                    "shift_y_px": round(s.shift_yx[0], 1),
                    "shift_x_px": round(s.shift_yx[1], 1),
                    "z_shift": s.z_shift,
                    "residual_px": round(s.residual_px, 2),
                    "consistency_px": round(s.consistency_px, 2),
                }
                for a, b, s, ok in steps
            ]
        )
    return _write_report(build_report(Path(lake.root), animals, alignments), Path(out), len(animals))


def _snapshot_report(root: Path, name: str, *, since: str | None, out: Path, animals: list[str]) -> int:
    """The report of a snapshot (its frozen numbers; the alignments are not frozen, so not shown)."""
    from ..store.feature_store import query
    from ..tools.report import build_report
    from ..tools.snapshot_query import opened_snapshot, snapshot_changes

    changes = (since, snapshot_changes(root, name, since)) if since else None
    with opened_snapshot(root, name) as frozen:
        page = build_report(frozen, animals or None, source=f"snapshot {name} of {root}", changes=changes)
        n_animals = len(animals) or len(query(frozen / "features.duckdb", "SELECT DISTINCT animal FROM sessions"))
    return _write_report(page, out, n_animals)


def _write_report(page: str, path: Path, n_animals: int) -> int:
    """Write the page and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    print(f"report of {n_animals} animal(s): {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained)")
    return 0
