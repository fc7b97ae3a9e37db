"""Command line: ``python -m synapflow_assets <command>``."""
import argparse
import os
import sys
import time
from pathlib import Path


def _simulate(args: argparse.Namespace) -> int:
    from .synthetic import SimulationParams, simulate_landing

    params = SimulationParams(shape=(args.layers, args.size, args.size))
    start = time.perf_counter()
    paths = simulate_landing(Path(args.out), animals=args.animals, sessions=args.sessions, seed=args.seed, params=params)
    print(f"{len(paths)} sessions in {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    import dagster as dg

    from .defs.resources import DataLake
    from .pipeline import ingest_landed, volume_summary

    os.environ.setdefault("DAGSTER_HOME", str(Path.cwd()))
    lake = DataLake(root=args.data)
    start = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        report = ingest_landed(instance, lake)
        rows = volume_summary(instance)
    print(f"raw_volume: {len(report.materialized)} materialized, {len(report.up_to_date)} up to date, "
          f"{len(report.failed)} failed ({time.perf_counter() - start:.1f} s)")
    for problem in report.skipped:
        print(f"  skipped {problem}")
    for partition, message in report.failed.items():
        print(f"  FAILED {partition}: {message}")
    if rows:
        import polars as pl

        with pl.Config(tbl_rows=-1, tbl_width_chars=160, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
            print(pl.DataFrame(rows))
    animals = sorted({row["partition"].split("|")[0] for row in rows})
    print(f"{len(rows)} volumes for {len(animals)} animals under {Path(args.data) / 'volumes'}")
    print(f"dagster instance: {os.environ['DAGSTER_HOME']} (open it with `make ui`)")
    return 1 if report.failed else 0


def _demo(args: argparse.Namespace) -> int:
    args.out = str(Path(args.data) / "landing")
    _simulate(args)
    return _ingest(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synapflow_assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write simulated sessions with ground truth to a landing folder")
    simulate.add_argument("--out", default="data/landing")
    for name in ("simulate", "demo"):
        sub = simulate if name == "simulate" else commands.add_parser("demo", help="simulate an example and run every asset")
        sub.add_argument("--animals", type=int, default=2)
        sub.add_argument("--sessions", type=int, default=3)
        sub.add_argument("--layers", type=int, default=32)
        sub.add_argument("--size", type=int, default=512, help="pixels per side of a layer")
        sub.add_argument("--seed", type=int, default=0)
        sub.set_defaults(handler=_simulate if name == "simulate" else _demo)
    ingest = commands.add_parser("ingest", help="materialize raw_volume for every landed session that is stale")
    ingest.set_defaults(handler=_ingest)
    for sub in (ingest, commands.choices["demo"]):
        sub.add_argument("--data", default=os.environ.get("SYNAPFLOW_DATA", "data"), help="data root (landing/, volumes/)")

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
