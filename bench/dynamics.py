"""The biologist's numbers from pixels: spine counts, formation, elimination and survival per session against
the simulator's truth, through exactly the asset code (``pipeline.process_landed``).

A simulated lab (``--animals`` x ``--sessions``, seed ``--seed``) lands as TIFF
stacks. It is processed twice, each time into its own data root and Dagster
instance:

- ``detector``: the champion detector on every layer, as ``ingest`` does;
- ``true boxes``: the simulator's true 2D boxes imported as detections
  (``detection.source: imported``), so depth linking, alignment, time tracking
  and dynamics run on perfect detections: what remains is tracking error, and
  the difference to ``detector`` is detection error.

Truth: the per-session statuses the simulator writes (``<session>.spines.csv``),
through the same ``features.dynamics.spine_dynamics`` as the pipeline. Errors
are mean absolute differences over the sessions after the first.

Run: .venv/bin/python bench/dynamics.py [--animals 3 --sessions 6 --seed 41]
Prints a table per run, a summary and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

RATES = ("n_in_view", "formation_rate", "elimination_rate", "survival_fraction")


def truth_dynamics(landing: Path) -> pl.DataFrame:
    from synapflow_assets.features.dynamics import spine_dynamics

    rows = []
    for animal in sorted(p for p in landing.iterdir() if p.is_dir()):
        for index, csv in enumerate(sorted(animal.glob("*.spines.csv"))):
            statuses = pl.read_csv(csv).select(pl.col("spine_id").alias("track_id"), "status")
            rows.append(statuses.with_columns(animal=pl.lit(animal.name), session=pl.lit(csv.name.split(".")[0]),
                                              session_index=pl.lit(index)))
    return spine_dynamics(pl.concat(rows)).select("animal", "session", *RATES)


def true_boxes_as_detections(landing: Path) -> None:
    """Replace each session's imported detections by its true boxes (reference CSV layout, score 1)."""
    for boxes_csv in landing.glob("*/*.boxes.csv"):
        session = boxes_csv.name.split(".")[0]
        boxes = pl.read_csv(boxes_csv)
        boxes.select(pl.format(f"{session}_layer{{}}.png", pl.col("layer").cast(pl.String).str.zfill(2)).alias("filename"),
                     pl.lit(512.0).alias("width"), pl.lit(512.0).alias("height"), pl.col("type").alias("class"),
                     pl.lit(1.0).alias("score"), "xmin", "ymin", "xmax", "ymax"
                     ).write_csv(boxes_csv.with_name(f"{session}.detections.csv"))


def run(root: Path, source: str) -> tuple[pl.DataFrame, dict]:
    import dagster as dg

    from synapflow_assets.defs.resources import DataLake, DetectionSettings
    from synapflow_assets.pipeline import process_landed
    from synapflow_assets.store.feature_store import query

    lake = DataLake(root=str(root))
    start = time.perf_counter()
    with dg.instance_for_test() as instance:
        report = process_landed(instance, lake, detection=DetectionSettings(source=source))
    seconds = time.perf_counter() - start
    measured = query(lake.store_path,
                     "SELECT animal, session, " + ", ".join(RATES) + " FROM dynamics ORDER BY animal, session")
    return measured, {"seconds": round(seconds, 1), "failed": report.failed, "warnings": len(report.warnings)}


def compare(truth: pl.DataFrame, measured: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    both = truth.join(measured, on=["animal", "session"], suffix="_measured", how="left")
    later = both.filter(pl.col("formation_rate").is_not_null())
    errors = {}
    for name in RATES[1:]:
        errors[name] = round(float((later[name] - later[f"{name}_measured"]).abs().mean()), 4)
    errors["count_error"] = round(float(((both["n_in_view_measured"] - both["n_in_view"]) / both["n_in_view"]).mean()), 4)
    return both, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()

    from synapflow_assets.synthetic import simulate_landing

    root = args.root or Path(tempfile.mkdtemp(prefix="dynamics-"))
    landing = root / "detector" / "landing"
    simulate_landing(landing, animals=args.animals, sessions=args.sessions, seed=args.seed)
    shutil.copytree(landing, root / "true_boxes" / "landing")
    true_boxes_as_detections(root / "true_boxes" / "landing")
    truth = truth_dynamics(landing)
    summary = {"animals": args.animals, "sessions": args.sessions, "seed": args.seed,
               "true_rates": {name: round(float(truth.filter(pl.col("formation_rate").is_not_null())[name].mean()), 4)
                              for name in RATES[1:]}}
    for name, source in (("detector", "model"), ("true_boxes", "imported")):
        measured, info = run(root / name, source)
        both, errors = compare(truth, measured)
        print(f"== {name} ({info['seconds']} s{', failed: ' + str(info['failed']) if info['failed'] else ''})")
        with pl.Config(tbl_rows=100, tbl_cols=20, float_precision=3):
            print(both)
        print(f"{name}: mean abs error formation {errors['formation_rate']:.3f}, elimination "
              f"{errors['elimination_rate']:.3f}, survival {errors['survival_fraction']:.3f}; "
              f"spine count error {errors['count_error']:+.1%}")
        summary[name] = {**errors, **info}
    print(f"true mean rates: {summary['true_rates']}")
    print(json.dumps({"bench": "dynamics", **summary}, default=str))
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
