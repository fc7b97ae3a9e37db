"""The biologist's numbers from pixels: spine counts, formation, elimination and survival per session against
the simulator's truth, through exactly the asset code (``pipeline.process_landed``).

Simulated labs (``--animals`` x ``--sessions``, seed ``--seed``) land as TIFF
stacks, one lab per field profile:

- ``dense``: 0.6-0.9 spines per um of dendrite (about 80-130 spines in view);
- ``sparse``: 0.15-0.3 spines per um (about 25-50 spines).

Both are imaged raw-like (``--acquisition raw``): about 250 photons per
filled voxel instead of the simulator's 1500, more autofluorescence and read
noise, drift up to 30 px and 4 layers, rotation up to 3 degrees, smooth
deformation, brightness changes up to 30%. ``--acquisition clean`` keeps the
simulator's defaults.

Each lab is processed twice, each time into its own data root and Dagster
instance:

- ``detector``: the champion detector on every layer, as ``ingest`` does;
- ``true boxes``: the simulator's true 2D boxes imported as detections
  (``detection.source: imported``), so depth linking, alignment, time tracking
  and dynamics run on perfect detections: what remains is tracking error, and
  the difference to ``detector`` is detection error.

Truth: the per-session statuses the simulator writes (``<session>.spines.csv``),
through the same ``features.dynamics.spine_dynamics`` as the pipeline. Errors
are mean absolute differences over the sessions after the first; track IDF1
and HOTA score the store's tracks (sessions as frames, mean 3D boxes) against
the true spine ids; ``coverage`` is the share of (session, rate) pairs whose
95% interval holds the true rate.

Run: .venv/bin/python bench/dynamics.py [--animals 3 --sessions 6 --seed 41 --profiles dense,sparse]
Prints a table per run, a summary and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import polars as pl

from synapflow_assets.synthetic import SimulationParams

RATES = ("n_in_view", "formation_rate", "elimination_rate", "survival_fraction", "new_persistent_fraction")
NEW_PERSISTENT = (pl.col("new_persistent") / (pl.col("new_persistent") + pl.col("new_transient"))).alias(
    "new_persistent_fraction"
)
INTERVALS = {
    "formation_rate": ("formation_low", "formation_high"),
    "elimination_rate": ("elimination_low", "elimination_high"),
    "survival_fraction": ("survival_low", "survival_high"),
}
MOTION = dict(max_drift_px=30, max_drift_layers=4, max_rotation_deg=3, deformation_px=2, max_brightness_change=0.3)
RAW = dict(photons_per_voxel=250.0, background_photons=30.0, read_noise_counts=8.0)
PROFILES = {"dense": dict(spine_density_per_um=(0.6, 0.9)), "sparse": dict(spine_density_per_um=(0.15, 0.3))}


def lab_params(profile: str, acquisition: str) -> SimulationParams:
    return replace(SimulationParams(), **MOTION, **PROFILES[profile], **(RAW if acquisition == "raw" else {}))


def truth_tables(landing: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """True dynamics per session, and the true 3D spines (mean box per session and id) for identity scores."""
    from synapflow_assets.evaluation.spine_matching import spines_from_boxes
    from synapflow_assets.features.dynamics import spine_dynamics

    rows, boxes = [], []
    for animal in sorted(p for p in landing.iterdir() if p.is_dir()):
        for index, csv in enumerate(sorted(animal.glob("*.spines.csv"))):
            session = csv.name.split(".")[0]
            statuses = pl.read_csv(csv).select(pl.col("spine_id").alias("track_id"), "status")
            rows.append(
                statuses.with_columns(animal=pl.lit(animal.name), session=pl.lit(session), session_index=pl.lit(index))
            )
            layer_boxes = pl.read_csv(animal / f"{session}.boxes.csv")
            boxes.append(
                spines_from_boxes(
                    layer_boxes.select("layer", "xmin", "ymin", "xmax", "ymax", id="spine_id")
                ).with_columns(sequence=pl.lit(animal.name), frame=pl.lit(index))
            )
    return spine_dynamics(pl.concat(rows)).with_columns(NEW_PERSISTENT), pl.concat(boxes)


def true_boxes_as_detections(landing: Path) -> None:
    """Replace each session's imported detections by its true boxes (reference CSV layout, score 1)."""
    for boxes_csv in landing.glob("*/*.boxes.csv"):
        session = boxes_csv.name.split(".")[0]
        boxes = pl.read_csv(boxes_csv)
        boxes.select(
            pl.format(f"{session}_layer{{}}.png", pl.col("layer").cast(pl.String).str.zfill(2)).alias("filename"),
            pl.lit(512.0).alias("width"),
            pl.lit(512.0).alias("height"),
            pl.col("type").alias("class"),
            pl.lit(1.0).alias("score"),
            "xmin",
            "ymin",
            "xmax",
            "ymax",
        ).write_csv(boxes_csv.with_name(f"{session}.detections.csv"))


def run(root: Path, source: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    import dagster as dg

    from synapflow_assets.defs.resources import DataLake, DetectionSettings
    from synapflow_assets.pipeline import process_landed
    from synapflow_assets.store.feature_store import query

    lake = DataLake(root=str(root))
    start = time.perf_counter()
    with dg.instance_for_test() as instance:
        report = process_landed(instance, lake, detection=DetectionSettings(source=source))
    seconds = time.perf_counter() - start
    measured = query(lake.store_path, "SELECT * FROM dynamics ORDER BY animal, session").with_columns(NEW_PERSISTENT)
    tracked = query(
        lake.store_path,
        """
        SELECT t.animal AS sequence, t.session_index AS frame, t.track_id AS id, s.xmin, s.ymin, s.xmax, s.ymax
        FROM tracks t JOIN spines s ON s.animal = t.animal AND s.session = t.session AND s.spine_id = t.spine_id""",
    )
    return measured, tracked, {"seconds": round(seconds, 1), "failed": report.failed, "warnings": len(report.warnings)}


def compare(truth: pl.DataFrame, measured: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    keep = ["animal", "session", *RATES, *(c for pair in INTERVALS.values() for c in pair if c in measured.columns)]
    both = truth.select("animal", "session", *RATES).join(
        measured.select(keep), on=["animal", "session"], suffix="_measured", how="left"
    )
    later = both.filter(pl.col("formation_rate").is_not_null())
    errors = {}
    for name in RATES[1:]:
        errors[name] = round(float((later[name] - later[f"{name}_measured"]).abs().drop_nans().mean() or 0.0), 4)
    errors["count_error"] = round(
        float(((both["n_in_view_measured"] - both["n_in_view"]) / both["n_in_view"]).mean()), 4
    )
    covered = [
        ((later[name] >= later[low]) & (later[name] <= later[high])).cast(pl.Float64)
        for name, (low, high) in INTERVALS.items()
        if low in later.columns
    ]
    if covered:
        errors["coverage"] = round(float(pl.concat(covered).mean()), 3)
    return both, errors


def identity(truth_spines: pl.DataFrame, tracked: pl.DataFrame) -> dict:
    from synapflow_assets.evaluation.tracking_metrics import tracking_scores

    scores = tracking_scores(
        truth_spines.select("sequence", "frame", "id", "xmin", "ymin", "xmax", "ymax"),
        tracked,
        frame="frame",
        iou_threshold=0.3,
    )
    return {"idf1": round(scores["idf1"], 3), "hota": round(scores["hota"], 3)}


def bench_profile(root: Path, profile: str, args) -> dict:
    from synapflow_assets.synthetic import simulate_landing

    landing = root / profile / "detector" / "landing"
    simulate_landing(
        landing,
        animals=args.animals,
        sessions=args.sessions,
        seed=args.seed,
        params=lab_params(profile, args.acquisition),
    )
    shutil.copytree(landing, root / profile / "true_boxes" / "landing")
    true_boxes_as_detections(root / profile / "true_boxes" / "landing")
    truth, truth_spines = truth_tables(landing)
    later = truth.filter(pl.col("formation_rate").is_not_null())
    summary = {
        "true_rates": {name: round(float(later[name].drop_nans().mean()), 4) for name in RATES[1:]},
        "mean_spines": round(float(truth["n_in_view"].mean()), 1),
    }
    for name, source in (("detector", "model"), ("true_boxes", "imported")):
        measured, tracked, info = run(root / profile / name, source)
        both, errors = compare(truth, measured)
        errors.update(identity(truth_spines, tracked))
        print(
            f"== {profile} / {name} ({info['seconds']} s{', failed: ' + str(info['failed']) if info['failed'] else ''})"
        )
        with pl.Config(tbl_rows=100, tbl_cols=20, float_precision=3, tbl_width_chars=250):
            print(both)
        print(
            f"{profile} / {name}: mean abs error formation {errors['formation_rate']:.3f}, elimination "
            f"{errors['elimination_rate']:.3f}, survival {errors['survival_fraction']:.3f}; spine count error "
            f"{errors['count_error']:+.1%}; new-persistent fraction {errors['new_persistent_fraction']:.3f}; "
            f"IDF1 {errors['idf1']:.3f}, HOTA {errors['hota']:.3f}"
            + (f"; 95% intervals hold the truth in {errors['coverage']:.0%}" if "coverage" in errors else "")
        )
        summary[name] = {
            **errors,
            **info,
            "seconds_per_session": round(info["seconds"] / (args.animals * args.sessions), 1),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--profiles", default="dense,sparse", help=f"comma-separated, from {', '.join(PROFILES)}")
    parser.add_argument("--acquisition", choices=("raw", "clean"), default="raw")
    parser.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()

    root = args.root or Path(tempfile.mkdtemp(prefix="dynamics-"))
    summary = {"animals": args.animals, "sessions": args.sessions, "seed": args.seed, "acquisition": args.acquisition}
    for profile in args.profiles.split(","):
        summary[profile] = bench_profile(root, profile, args)
    for profile in args.profiles.split(","):
        print(
            f"{profile}: true mean rates {summary[profile]['true_rates']}, {summary[profile]['mean_spines']} "
            "spines in view"
        )
    print(json.dumps({"bench": "dynamics", **summary}, default=str))
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
