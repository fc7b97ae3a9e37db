"""Command line: ``python -m synapflow_assets <command>``."""
import argparse
import os
import sys
import time
from pathlib import Path

from .lab_commands import _export_napari, _report, _review


def _simulate(args: argparse.Namespace) -> int:
    from .synthetic import SimulationParams, simulate_landing

    single = getattr(args, "single_plane", False)
    params = SimulationParams(shape=(args.layers, args.size, args.size), **({"layer_jitter_px": 0.0} if single else {}))
    start = time.perf_counter()
    paths = simulate_landing(Path(args.out), animals=args.animals, sessions=args.sessions, seed=args.seed, params=params,
                             single_plane=single)
    print(f"{len(paths)} sessions in {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


def _settings_resources(args: argparse.Namespace) -> dict:
    """The ``imaging``, ``detection`` and ``alignment`` resources from the command-line flags (unset flags: None)."""
    from .defs.resources import AlignmentSettings, DetectionSettings, ImagingSettings

    get = lambda name: getattr(args, name, None)
    return {
        "imaging": ImagingSettings(pixel_size_um=get("pixel_size"), z_step_um=get("z_step"), channel=get("channel"),
                                   n_channels=get("n_channels"), min_layers=get("min_layers"),
                                   estimate_pixel_size=False if get("no_pixel_size_estimate") else None),
        "detection": DetectionSettings(source=get("source") or "model", score_threshold=get("score"), upscale=get("upscale"), box_scale=get("box_scale"),
                                       tile=get("tile")),
        "alignment": AlignmentSettings(min_trusted_blocks=get("min_trusted_blocks"), min_global_peak=get("min_global_peak"),
                                       max_rotation_deg=get("max_rotation"), max_z_shift=get("max_z_shift")),
    }


def _ingest(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .defs.instance import instance_home, open_instance
    from .defs.resources import lake_from_environment
    from .pipeline import IngestBusy, process_landed, session_summary
    from .progress import Progress
    from .store.feature_store import StoreError
    from .store.locations import StorageError

    try:
        resources = _settings_resources(args)
    except ValidationError as error:
        print(f"error: invalid option: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}", file=sys.stderr)
        return 2
    lake = lake_from_environment(args.data)
    start = time.perf_counter()
    try:
        instance = open_instance(args.data)
        lake.store_path  # noqa: B018 - an object-store root without a feature-store file fails here, before any run
    except StorageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with instance, Progress(0, "partitions", unit="partition") as bar:

        def progress(done: int, total: int, line: str) -> None:
            bar.bar.total = total
            bar.step(done, line)
            if line.startswith("waiting"):
                bar.line(f"  {line}")
            elif not line.endswith("up to date"):
                bar.line(f"  running {line}")

        try:
            report = process_landed(instance, lake, **resources, progress=progress)
        except (StoreError, IngestBusy, StorageError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        rows = session_summary(instance)
    print(f"partitions: {len(report.materialized)} run, {len(report.up_to_date)} up to date, "
          f"{len(report.failed)} failed, {len(report.skipped)} skipped ({time.perf_counter() - start:.1f} s)")
    for partition in report.materialized:
        print(f"  ran {partition}")
    for line in report.warnings:
        print(f"  WARNING {line}")
    for line in report.waiting:
        print(f"  WAITING {line}")
    if rows:
        import polars as pl

        with pl.Config(tbl_rows=-1, tbl_width_chars=160, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
            print(pl.DataFrame(rows))
    animals = sorted({row["partition"].split("/")[0] for row in rows})
    print(f"{len(rows)} sessions of {len(animals)} animals; outputs under {args.data.rstrip('/')}/volumes, /detections, /spines")
    print(f"dagster instance: {instance_home(args.data)} (open it with `make ui`, or DAGSTER_HOME={instance_home(args.data)} "
          "dagster dev -w workspace.yaml)")
    for problem in report.skipped:
        print(f"SKIPPED {problem}", file=sys.stderr)
    for partition, message in report.failed.items():
        print(f"FAILED {partition}: {message}", file=sys.stderr)
    if report.failed or report.skipped:
        print(f"{len(report.failed) + len(report.skipped)} problems: fix the inputs named above and rerun ingest "
              "(full logs: make ui, then Runs)", file=sys.stderr)
        return 1
    return 0


def _upgrade(args: argparse.Namespace) -> int:

    from .defs.instance import instance_home, open_instance
    from .defs.partition_upgrade import old_layout, upgrade_partitions

    home = instance_home(args.data)
    with open_instance(args.data) as instance:
        if not old_layout(instance):
            print(f"{home}: already on animal/session partitions; nothing to do")
            return 0
        moved = upgrade_partitions(instance)
    print(f"{home}: {len(moved)} session partitions moved to animal/session "
          f"({', '.join(moved[:6])}{' ...' if len(moved) > 6 else ''}); their history stays on the run pages")
    return 0


DEMO_QUERY = ("SELECT animal, session, round(survival_fraction, 3) AS survival, "
              "printf('%.3f [%.3f, %.3f]', formation_rate, formation_low, formation_high) AS formation_95, "
              "printf('%.3f [%.3f, %.3f]', elimination_rate, elimination_low, elimination_high) AS elimination_95 "
              "FROM survival_curve")


def _demo(args: argparse.Namespace) -> int:
    args.out = str(Path(args.data) / "landing")
    _simulate(args)
    status = _ingest(args)
    print(f"\nfeature store {Path(args.data) / 'features.duckdb'}: python -m synapflow_assets sql \"{DEMO_QUERY}\"")
    sql_args = argparse.Namespace(query=DEMO_QUERY, file=None, format="table", out=None, limit=40,
                                  store=str(Path(args.data) / "features.duckdb"))
    return status or _sql(sql_args)


def _track_depth(args: argparse.Namespace) -> int:
    import polars as pl

    from .geometry import BOX_COLUMNS
    from .tracking.box_tables import REFERENCE_COLUMNS, link_table, read_reference_boxes
    from .tracking.depth import BoxError, DepthLinkParams

    params = DepthLinkParams(
        inactive_wait=args.inactive_wait,
        min_layers=args.min_layers,
        max_centre_distance_px=args.max_centre_distance,
        fill_gaps=args.fill_gaps,
    )
    try:
        linked = link_table(read_reference_boxes(Path(args.boxes)), params)
    except BoxError as error:
        message = str(error) if str(args.boxes) in str(error) else f"{args.boxes}: {error}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    linked = linked.sort(pl.col("row").is_null(), "row", "stack", "layer")
    if "raw_xmin" in linked.columns:
        linked = linked.with_columns(**{c: pl.col(f"raw_{c}") for c in BOX_COLUMNS}).drop(*(f"raw_{c}" for c in BOX_COLUMNS))
    extra = [c for c in linked.columns if c not in REFERENCE_COLUMNS + ["id", "row", "stack", "layer", "interpolated"]]
    linked.select(["id", *REFERENCE_COLUMNS, "interpolated", *extra]).write_csv(args.out)
    kept = linked.filter(linked["id"] >= 0)
    print(f"{args.out}: {linked['stack'].n_unique()} stacks, {kept['id'].n_unique()} 3D spines from "
          f"{len(linked)} rows ({int(linked['interpolated'].sum())} interpolated, {int((linked['id'] < 0).sum())} dropped as too short)")
    return 0


def _sql(args: argparse.Namespace) -> int:
    import duckdb
    import polars as pl

    from .store.feature_store import StoreError, query

    try:
        sql = Path(args.file).read_text() if args.file else args.query
    except OSError as error:
        print(f"error: cannot read the query file {args.file} ({error.strerror})", file=sys.stderr)
        return 2
    if not sql:
        print("error: give a query or --file", file=sys.stderr)
        return 2
    try:
        result = query(Path(args.store), sql)
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except duckdb.Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.format == "table":
        with pl.Config(tbl_rows=args.limit, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=40, tbl_hide_dataframe_shape=True):
            print(result)
        return 0
    out = args.out or sys.stdout.buffer
    if args.format == "parquet" and not args.out:
        print("error: --format parquet needs --out FILE", file=sys.stderr)
        return 2
    {"csv": result.write_csv, "json": result.write_ndjson, "parquet": result.write_parquet}[args.format](out)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .store.export import export_sessions
    from .store.feature_store import StoreError

    try:
        paths = export_sessions(Path(args.store), Path(args.out))
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(paths)} session CSVs under {args.out}")
    return 0


def _settings_flags(parser: argparse.ArgumentParser, *, alignment: bool) -> None:
    """Flags that override ``synapflow.yaml`` (see ``synapflow_assets.settings``; unset: from the files, else the default)."""
    from .settings import DEFAULT_SCORE_THRESHOLD

    group = parser.add_argument_group("settings (override landing/synapflow.yaml and landing/<animal>/synapflow.yaml)")
    group.add_argument("--pixel-size", type=float, help="x/y pixel size in um (overrides the file's metadata)")
    group.add_argument("--no-pixel-size-estimate", action="store_true",
                       help="use the default pixel size, not the estimate from the dendrite width, for files without one")
    group.add_argument("--z-step", type=float, help="z step in um (overrides the file's metadata)")
    group.add_argument("--channel", type=int, help="channel of multi-channel files (default: the brightest)")
    group.add_argument("--n-channels", type=int, help="channels interleaved page by page, when the file does not say")
    group.add_argument("--min-layers", type=int, help="refuse files with fewer layers (default 1: single planes accepted)")
    group.add_argument("--score", type=float, help=f"minimal detection score (default {DEFAULT_SCORE_THRESHOLD})")
    group.add_argument("--upscale", type=float, help="detector test-time zoom (default: the model's)")
    group.add_argument("--box-scale", type=float, help="detector box-size factor (default: the model's)")
    group.add_argument("--tile", type=int, help="detector tile size in pixels (default: the model's)")
    if alignment:
        group.add_argument("--min-trusted-blocks", type=float,
                           help="share of the blocks holding structure that must match for two sessions to align")
        group.add_argument("--min-global-peak", type=float, help="global correlation peak (sigma) for two sessions to overlap")
        group.add_argument("--max-rotation", type=float, help="largest rotation between sessions searched (degrees)")
        group.add_argument("--max-z-shift", type=int, help="largest z-shift between sessions searched (layers)")


DELEGATED = {"detect": "detect_main", "train-detector": "train_detector_main"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        from .detection import cli

        return getattr(cli, DELEGATED[argv[0]])(argv[1:])
    parser = argparse.ArgumentParser(prog="synapflow_assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("detect", help="run the detector on PNG/TIFF layers or stacks (see detect --help)")
    commands.add_parser("train-detector", help="train a detector (see train-detector --help)")

    simulate = commands.add_parser("simulate", help="write simulated sessions with ground truth to a landing folder")
    simulate.add_argument("--out", default="data/landing")
    simulate.add_argument("--single-plane", action="store_true", help="write each session as one plane (its projection)")
    for name in ("simulate", "demo"):
        sub = simulate if name == "simulate" else commands.add_parser("demo", help="simulate an example and run every asset")
        sub.add_argument("--animals", type=int, default=2)
        sub.add_argument("--sessions", type=int, default=3)
        sub.add_argument("--layers", type=int, default=32)
        sub.add_argument("--size", type=int, default=512, help="pixels per side of a layer")
        sub.add_argument("--seed", type=int, default=0)
        sub.set_defaults(handler=_simulate if name == "simulate" else _demo)
    ingest = commands.add_parser("ingest", help="materialize the stale assets of every landed session")
    ingest.set_defaults(handler=_ingest)
    for sub in (ingest, commands.choices["demo"]):
        sub.add_argument("--data", default=os.environ.get("SYNAPFLOW_DATA", "data"), help="data root (landing/, volumes/)")
    _settings_flags(ingest, alignment=True)
    ingest.add_argument("--source", choices=["model", "imported", "baseline"], default="model",
                        help="where boxes come from: the champion detector (default), <session>.detections.csv "
                             "beside each session, or the LoG baseline")

    depth = commands.add_parser("track-depth", help="link 2D boxes (reference CSV layout) into 3D spines")
    depth.add_argument("--boxes", required=True, help="CSV: filename,width,height,class,score,xmin,ymin,xmax,ymax")
    depth.add_argument("--out", required=True)
    depth.add_argument("--inactive-wait", type=int, default=4, help="layers a spine may be missed")
    depth.add_argument("--min-layers", type=int, default=1, help="drop 3D spines seen on fewer layers (id -1)")
    depth.add_argument("--max-centre-distance", type=float, default=20.0, help="pixels")
    depth.add_argument("--fill-gaps", type=int, default=0,
                       help="also write interpolated rows on bridged gaps of at most this many layers (default 0: the input rows only)")
    depth.set_defaults(handler=_track_depth)

    sql = commands.add_parser("sql", help="query the feature store (read-only)")
    sql.add_argument("query", nargs="?", help="SQL, e.g. \"SELECT * FROM survival_curve\"")
    sql.add_argument("--file", help="read the SQL from this file")
    sql.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    sql.add_argument("--out", help="write the result here instead of standard output")
    sql.add_argument("--limit", type=int, default=40, help="rows shown in table format")
    sql.add_argument("--store", default=str(Path(os.environ.get("SYNAPFLOW_DATA", "data")) / "features.duckdb"))
    sql.set_defaults(handler=_sql)

    export = commands.add_parser("export", help="per-session CSVs in the reference column layout, with features")
    export.add_argument("--out", required=True)
    export.add_argument("--store", default=str(Path(os.environ.get("SYNAPFLOW_DATA", "data")) / "features.duckdb"))
    export.set_defaults(handler=_export)

    report = commands.add_parser("report", help="a self-contained HTML report of the animals' dynamics")
    report.add_argument("--out", required=True, help="HTML file to write")
    report.add_argument("--animal", action="append", help="animal to include (repeatable; default: all)")
    report.add_argument("--data", default=os.environ.get("SYNAPFLOW_DATA", "data"))
    report.set_defaults(handler=_report)

    napari = commands.add_parser("export-napari", help="registered volumes, tracks and points of an animal for napari")
    napari.add_argument("--animal", required=True)
    napari.add_argument("--out", required=True)
    napari.add_argument("--data", default=os.environ.get("SYNAPFLOW_DATA", "data"))
    napari.set_defaults(handler=_export_napari)

    review = commands.add_parser("review", help="export the least confident events for checking, or apply the answers")
    review.add_argument("--animal", help="animal whose events to export")
    review.add_argument("--out", help="folder for review.csv and the pictures")
    review.add_argument("--limit", type=int, default=20, help="events to export, least confident first")
    review.add_argument("--apply", metavar="FILE", help="read a filled review.csv back into the store and recompute dynamics")
    review.add_argument("--by", help="who corrected (default: the login name)")
    review.add_argument("--labels", metavar="FILE", help="write the corrected spines the detector missed as training boxes")
    review.add_argument("--data", default=os.environ.get("SYNAPFLOW_DATA", "data"))
    review.set_defaults(handler=_review)

    upgrade = commands.add_parser("upgrade", help="move an instance made before the animal/session partitions to them")
    upgrade.add_argument("--data", default=os.environ.get("SYNAPFLOW_DATA", "data"), help="data root (its instance: DATA/dagster)")
    upgrade.set_defaults(handler=_upgrade)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
