"""A lab's own single-plane MIP time-lapse, simulated from the facts of real data, through `ingest` at defaults.

The stand-in (``synthetic.mip_timelapse``, ``simulate --profile``) reproduces
``docs/real-timelapse-notes.md`` of the shared docs: 1024 px uint8 MIPs with no
pixel size, fine pixels (0.02-0.05 um/px), sparse fields of dendrites along y,
25-110 px shifts, focus and brightness changes, haze. Profiles:

- ``mip-timelapse``: sessions hours apart on one day (true survival near 1);
- ``mip-days``: sessions days apart with known turnover.

Each profile lands ``--series`` x ``--sessions`` and is ingested with no
option (``--source model``: the champion detector; ``imported``: the
simulator's imperfect detections with stacked duplicates; ``truth``: its true
boxes, so what is left is the tracker's error; ``--score-threshold`` overrides the
detection threshold). Printed per profile
and in one JSON line:

- sessions failed, null rates;
- same-field pairs accepted (the gate), other-field pairs accepted (the
  sessions of the same index in different series, the same gate), alignment error (px) of the
  true spine centres mapped through each accepted pair, and beside it that of the best rigid transform
  (least squares on the true centres themselves): the field also deforms, which no rigid alignment follows;
- mean absolute errors of formation, elimination and survival against the
  truth, spine count error;
- split-identity share: events that overlap another track of their session;
- re-detection: of the true spines present at t-1 and t and tracked at t-1,
  the share tracked at t under the same track id;
- tracks holding two or more true spines (a spine formed next to an
  eliminated one that took its track).

Run: .venv/bin/python bench/real_timelapse.py [--series 3 --sessions 8 --seed 11 --source model]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from skimage.transform import EuclideanTransform

sys.path.insert(0, str(Path(__file__).parent))
import itertools

from dynamics import compare, true_boxes_as_detections, truth_tables

from synapflow_assets.geometry import box_iou


def ingest(root: Path, source: str, score_threshold: float | None = None) -> dict:
    import dagster as dg

    from synapflow_assets.defs.resources import DataLake, DetectionSettings
    from synapflow_assets.pipeline import process_landed

    start = time.perf_counter()
    with dg.instance_for_test() as instance:
        report = process_landed(
            instance,
            DataLake(root=str(root)),
            detection=DetectionSettings(source=source, score_threshold=score_threshold),
        )
    return {"seconds": round(time.perf_counter() - start, 1), "failed": dict(report.failed)}


def true_centres(landing: Path, animal: str, session: str) -> pl.DataFrame:
    boxes = pl.read_csv(landing / animal / f"{session}.boxes.csv")
    return boxes.group_by("spine_id").agg(
        y=((pl.col("ymin") + pl.col("ymax")) / 2).mean(), x=((pl.col("xmin") + pl.col("xmax")) / 2).mean()
    )


def true_anchors(landing: Path, animal: str, session: str) -> pl.DataFrame:
    """Where each spine's base really is in the session's pixels (the simulator's map, deformation included):
    unlike a box centre, it does not move with the spine's size or the projected depth range."""
    spines = pl.read_csv(landing / animal / f"{session}.spines.csv")
    return spines.filter(pl.col("status") != "out_of_view").select("spine_id", "y", "x")


def alignment_figures(root: Path, landing: Path) -> dict:
    """Gate decisions on same-field and other-field pairs, and the alignment error of accepted same-field pairs."""
    from synapflow_assets.defs.resources import DataLake
    from synapflow_assets.defs.track_assets import animal_sessions
    from synapflow_assets.tracking.incremental import AnimalTracker

    lake = DataLake(root=str(root))
    animals = sorted(p.name for p in landing.iterdir() if p.is_dir())
    same, errors, anchor_errors, best_rigid, series = [], [], [], [], []
    cache = Path(tempfile.mkdtemp(prefix="gate-"))
    try:
        for animal in animals:
            sessions = animal_sessions(lake, animal)
            series.append(sessions)
            tracker = AnimalTracker(lake.tracks_cache(animal))
            for a, b in itertools.pairwise(sessions):
                ok, _, _ = tracker.gate(a, b)
                same.append(ok)
                if not ok:
                    continue
                both = true_centres(landing, animal, a.key).join(
                    true_centres(landing, animal, b.key), on="spine_id", suffix="_b"
                )
                source, target = both.select("y", "x").to_numpy(), both.select("y_b", "x_b").to_numpy()
                step = tracker.alignment(a, b)
                mapped = step.map_points(source)
                best = EuclideanTransform.from_estimate(source[:, ::-1], target[:, ::-1])(source[:, ::-1])[:, ::-1]
                errors.append(np.linalg.norm(mapped - target, axis=1))
                best_rigid.append(np.linalg.norm(best - target, axis=1))
                anchors = true_anchors(landing, animal, a.key).join(
                    true_anchors(landing, animal, b.key), on="spine_id", suffix="_b"
                )
                moved = step.map_points(anchors.select("y", "x").to_numpy())
                anchor_errors.append(np.linalg.norm(moved - anchors.select("y_b", "x_b").to_numpy(), axis=1))
        other_tracker = AnimalTracker(cache)
        other = [
            other_tracker.gate(a, b)[0]
            for i, first in enumerate(series)
            for second in series[i + 1 :]
            for a, b in zip(first, second, strict=False)
        ]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    error, rigid, anchor = (np.concatenate(e) if e else np.array([np.nan]) for e in (errors, best_rigid, anchor_errors))
    return {
        "same_field_accepted": round(float(np.mean(same)), 3) if same else None,
        "other_field_accepted": round(float(np.mean(other)), 3) if other else None,
        "other_field_pairs": len(other),
        "alignment_error_px_median": round(float(np.median(error)), 2),
        "alignment_error_px_p90": round(float(np.percentile(error, 90)), 2),
        "best_rigid_error_px_median": round(float(np.median(rigid)), 2),
        "anchor_alignment_error_px_median": round(float(np.median(anchor)), 2),
    }


def identity_figures(root: Path, landing: Path) -> dict:
    """Re-detection (of the true spines present at t-1 and t and tracked at t-1, the share tracked at t with the
    same id) and the tracks holding two or more true spines (a spine formed next to an eliminated one that took
    its track, or two spines swapped)."""
    from synapflow_assets.defs.resources import DataLake
    from synapflow_assets.store.feature_store import query

    lake = DataLake(root=str(root))
    tracks = query(
        lake.store_path,
        "SELECT animal, session, session_index, track_id, status, xmin, ymin, xmax, ymax "
        "FROM tracks WHERE status IN ('present', 'new') AND xmin IS NOT NULL",
    )
    kept, asked, holders = 0, 0, []
    for animal in sorted(p.name for p in landing.iterdir() if p.is_dir()):
        matched: dict[str, dict[int, int]] = {}
        statuses = {}
        for csv in sorted((landing / animal).glob("*.spines.csv")):
            session = csv.name.split(".")[0]
            truth = (
                pl.read_csv(landing / animal / f"{session}.boxes.csv")
                .group_by("spine_id")
                .agg(pl.col("xmin").mean(), pl.col("ymin").mean(), pl.col("xmax").mean(), pl.col("ymax").mean())
            )
            statuses[session] = dict(pl.read_csv(csv).select("spine_id", "status").iter_rows())
            found = tracks.filter((pl.col("animal") == animal) & (pl.col("session") == session))
            overlap = box_iou(
                truth.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
                found.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
            )
            if overlap.size:
                i, j = linear_sum_assignment(-overlap)
                good = overlap[i, j] >= 0.2
                matched[session] = dict(
                    zip(truth["spine_id"].to_numpy()[i[good]], found["track_id"].to_numpy()[j[good]], strict=False)
                )
            else:
                matched[session] = {}
        order = sorted(matched)
        held: dict[int, set[int]] = {}
        for session in order:
            for spine, track in matched[session].items():
                held.setdefault(int(track), set()).add(int(spine))
        holders += [len(spines) for spines in held.values()]
        for previous, current in itertools.pairwise(order):
            for spine, track in matched[previous].items():
                if statuses[current].get(spine) in ("present",) and statuses[previous].get(spine) in ("present", "new"):
                    asked += 1
                    kept += matched[current].get(spine) == track
    return {
        "redetection": round(kept / asked, 3) if asked else float("nan"),
        "tracks_matched": len(holders),
        "tracks_holding_two_spines": sum(n > 1 for n in holders),
    }


def bench_profile(root: Path, profile: str, args) -> dict:
    from synapflow_assets.features.plausibility import split_identity_share
    from synapflow_assets.store.feature_store import query
    from synapflow_assets.synthetic.mip_timelapse import simulate_mip_timelapse

    work = root / profile
    landing = work / "landing"
    simulate_mip_timelapse(
        landing,
        series=args.series,
        sessions=args.sessions,
        seed=args.seed,
        profile=profile,
        detections=args.source != "model",
    )
    if args.source == "truth":
        true_boxes_as_detections(landing)
    info = ingest(work, "model" if args.source == "model" else "imported", args.score_threshold)
    truth, _ = truth_tables(landing)
    summary: dict = {"ingest": info}
    try:
        measured = query(work / "features.duckdb", "SELECT * FROM dynamics ORDER BY animal, session")
        tracks = query(work / "features.duckdb", "SELECT * FROM tracks")
    except Exception as error:
        print(f"== {profile}: nothing in the store ({error})")
        return {**summary, "error": str(error)}
    both, errors = compare(truth, measured.with_columns(new_persistent_fraction=pl.lit(None, pl.Float64)))
    later = measured.filter(pl.col("session_index") > 0)
    summary.update(
        {
            "sessions_tracked": int(measured.height),
            "null_rates": int(
                later.select(
                    pl.col("survival_fraction", "formation_rate", "elimination_rate").null_count()
                ).sum_horizontal()[0]
            ),
            "survival_error": errors["survival_fraction"],
            "formation_error": errors["formation_rate"],
            "elimination_error": errors["elimination_rate"],
            "count_error": errors["count_error"],
            "coverage": errors.get("coverage"),
            "split_identity_share": round(split_identity_share(tracks), 3),
            **identity_figures(work, landing),
            **alignment_figures(work, landing),
        }
    )
    print(f"== {profile} ({info['seconds']} s, failed: {info['failed'] or 'none'})")
    with pl.Config(tbl_rows=100, tbl_cols=12, float_precision=3, tbl_width_chars=200):
        print(
            both.select(
                "animal",
                "session",
                "n_in_view",
                "n_in_view_measured",
                "survival_fraction",
                "survival_fraction_measured",
                "formation_rate",
                "formation_rate_measured",
                "elimination_rate",
                "elimination_rate_measured",
            )
        )
    print(", ".join(f"{k} {v}" for k, v in summary.items() if k != "ingest"))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profiles", default="mip-timelapse,mip-days")
    parser.add_argument(
        "--source",
        choices=("model", "imported", "truth"),
        default="model",
        help="the champion detector, the simulator's imperfect detections, or its true boxes (tracking alone)",
    )
    parser.add_argument(
        "--score-threshold", type=float, default=None, help="detection score threshold (default: the settings')"
    )
    parser.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="real-timelapse-"))
    summary = {
        "series": args.series,
        "sessions": args.sessions,
        "seed": args.seed,
        "source": args.source,
        "score_threshold": args.score_threshold,
    }
    for profile in args.profiles.split(","):
        summary[profile] = bench_profile(root, profile, args)
    print(json.dumps({"bench": "real_timelapse", **summary}, default=str))
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
