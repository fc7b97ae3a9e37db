"""Command-line handlers for what a lab does with its results: review events, report, hand off to napari."""
import argparse
import sys
from pathlib import Path

from .store.locations import is_remote


def _review(args: argparse.Namespace) -> int:
    from .defs.instance import open_instance

    from .defs.resources import DataLake
    from .imaging.errors import InputError
    from .pipeline import recompute_dynamics
    from .review import export_review, labels_from_corrections, read_review
    from .store.feature_store import FeatureStore, StoreError, query

    if is_remote(args.data):
        return _local_only(args)
    root = Path(args.data)
    try:
        if args.apply:
            corrections = read_review(Path(args.apply), corrected_by=args.by)
            if not len(corrections):
                print(f"{args.apply}: no row has a corrected_status; nothing to apply")
                return 0
            if not (root / "features.duckdb").exists():
                raise InputError(root / "features.duckdb", "no feature store to correct (run ingest first, or pass --data)")
            with FeatureStore(root / "features.duckdb") as store:
                store.add_corrections(corrections)
            with open_instance(root) as instance:
                for animal in sorted(corrections["animal"].unique()):
                    problem = recompute_dynamics(instance, DataLake(root=str(root)), animal)
                    if problem:
                        print(f"error: {animal}: corrections stored, but spine_dynamics failed: {problem}", file=sys.stderr)
                        return 1
            matched = query(root / "features.duckdb", "SELECT count(*) FROM tracks WHERE corrected_by IS NOT NULL").item()
            print(f"{len(corrections)} corrections stored; {matched} track rows corrected; dynamics of "
                  f"{', '.join(sorted(corrections['animal'].unique()))} recomputed")
            if matched < len(corrections):
                print(f"error: {len(corrections) - matched} corrections match no track row within 1 um of their place "
                      "(another animal, session or data folder?); they stay stored and apply if that row returns", file=sys.stderr)
                return 1
            return 0
        if not args.animal:
            print("error: review needs --animal (to export) or --apply FILE", file=sys.stderr)
            return 2
        if args.labels:
            labels = labels_from_corrections(root, args.animal)
            Path(args.labels).parent.mkdir(parents=True, exist_ok=True)
            labels.write_csv(args.labels)
            print(f"{len(labels)} training boxes from the corrections of {args.animal} in {args.labels} "
                  "(train-detector --extra-labels)")
            return 0
        if not args.out:
            print("error: review --animal needs --out DIR (or --labels FILE)", file=sys.stderr)
            return 2
        table = export_review(root, args.animal, Path(args.out), limit=args.limit)
    except (InputError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(table)} events to review in {Path(args.out) / 'review.csv'} (pictures beside it): fill corrected_status "
          f"with present, new, eliminated, out_of_view or unconfirmed, then run review --apply {Path(args.out) / 'review.csv'}")
    return 0


def _local_only(args: argparse.Namespace) -> int:
    print(f"error: {args.data}: `{args.command}` reads a local data root; run it on a copy "
          f"(e.g. aws s3 sync {args.data} ./lab)", file=sys.stderr)
    return 2


def _export_napari(args: argparse.Namespace) -> int:
    from .defs.resources import DataLake
    from .defs.track_assets import animal_alignments
    from .imaging.errors import InputError
    from .napari_export import export_napari
    from .store.feature_store import StoreError, query

    lake = DataLake(root=args.data)
    if lake.remote:
        return _local_only(args)
    try:
        safe = args.animal.replace("'", "''")
        tracks = query(lake.store_path, f"SELECT * FROM tracks WHERE animal = '{safe}'")
        sizes = query(lake.store_path, f"SELECT session, spine_id, size FROM spine_features WHERE animal = '{safe}'")
        sessions, steps = animal_alignments(lake, args.animal)
        written = export_napari(lake.root, args.animal, Path(args.out), [s.key for s in sessions], steps, tracks, sizes)
    except (InputError, StoreError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(sessions)} registered volumes, tracks.csv and points.csv in {args.out} "
          f"(napari: open the .ome.zarr folders, then tracks.csv as Tracks and points.csv as Points)")
    return 0 if written else 1


def _report(args: argparse.Namespace) -> int:
    import polars as pl

    from .defs.resources import DataLake
    from .defs.track_assets import animal_alignments
    from .imaging.errors import InputError
    from .report import build_report
    from .store.feature_store import StoreError, query

    lake = DataLake(root=args.data)
    if lake.remote:
        return _local_only(args)
    try:
        animals = args.animal or query(lake.store_path, "SELECT DISTINCT animal FROM sessions ORDER BY animal")["animal"].to_list()
        alignments = {}
        for animal in animals:
            sessions, aligned = animal_alignments(lake, animal)
            steps = [(a.key, b.key, step) for a, b, step in zip(sessions, sessions[1:], aligned)]
            alignments[animal] = pl.DataFrame(
                [{"from": a, "to": b, "aligned": s.ok, "rotation_deg": round(s.rotation_deg, 2),
                  "shift_y_px": round(s.shift_yx[0], 1), "shift_x_px": round(s.shift_yx[1], 1), "z_shift": s.z_shift,
                  "residual_px": round(s.residual_px, 2), "consistency_px": round(s.consistency_px, 2)} for a, b, s in steps])
        page = build_report(lake.root, animals, alignments)
    except (InputError, StoreError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    print(f"report of {len(animals)} animal(s): {out} ({out.stat().st_size / 1e6:.1f} MB, self-contained)")
    return 0
