"""Time tracking on simulated animals: alignment accuracy, identities, statuses and speed.

Default: 3 animals x 6 sessions, drift up to 30 px x/y and 4 layers z, rotation
up to 3 degrees, smooth deformation, 10% formation and elimination per session,
brightness changes up to 30%. Tracked twice: from the true 3D spines, and from
detected spines (the whole pipeline):

- ``--detections detector`` (default): the shipped detector (score >= 0.35,
  as the pipeline's default) on every layer of the registered volume, then
  depth linking into 3D spines, exactly as ``detections_2d`` and ``spines_3d``
  do. On 2 CPU cores the detector needs about 50 s per 32x512x512 session
  (15 min for 3 x 6), so this column runs on sessions of ``--detector-shape``
  (default 32x256x256, same drift, rotation, deformation and dynamics); the
  printout says so.
- ``--detections simulated``: simulated detector output (ground truth with
  jitter, misses and false positives) on the default-size sessions.
- ``--detections both``.

Run: .venv/bin/python bench/time_tracking.py [--animals 3 --sessions 6 --detections detector]
Prints a table and one JSON line.
"""

import argparse
import json
import tempfile
import time
from dataclasses import replace

import numpy as np
import polars as pl

from synapflow_assets.defs.resources import DetectionSettings
from synapflow_assets.evaluation.time_tracking import identity_scores, status_accuracy
from synapflow_assets.imaging.registration import register_layers
from synapflow_assets.synthetic import SimulationParams, simulate_animal
from synapflow_assets.synthetic.detector_noise import simulated_detections
from synapflow_assets.tracking.box_tables import link_table, read_reference_boxes
from synapflow_assets.tracking.depth import DepthLinkParams
from synapflow_assets.tracking.incremental import AnimalTracker, SessionInput
from synapflow_assets.tracking.spines import summarize_spines

PARAMS = SimulationParams(
    max_drift_px=30,
    max_drift_layers=4,
    max_rotation_deg=3,
    deformation_px=2,
    max_brightness_change=0.3,
    elimination_prob=0.1,
    formation_rate=0.1,
)


SETTINGS = DetectionSettings()
"""The pipeline's detection settings (its defaults), so the detector runs as ``detections_2d`` runs it."""
SCORE_THRESHOLD = SETTINGS.score_threshold
"""0.35 by default: the shipped detector's best F1."""


def detected_spines(sim, tmp) -> pl.DataFrame:
    """Simulated detector output linked through depth into 3D spines."""
    path = tmp / f"s{sim.index}.csv"
    simulated_detections(sim.boxes, f"s{sim.index}", sim.volume.shape[1:], seed=sim.index).write_csv(path)
    return summarize_spines(link_table(read_reference_boxes(path)), sim.voxel_size_um)


def load_detector():
    """The detector shipped with the package, on the CPU (as ``spine_detector`` registers it)."""
    from synapflow_assets.detection.inference import SpineDetector, shipped_model_folder

    detector = SpineDetector.load(shipped_model_folder(), device="cpu")
    options = {k: getattr(SETTINGS, k) for k in ("upscale", "box_scale", "tile") if hasattr(SETTINGS, k)}
    return detector.set_options(**options)


def detector_spines(detector, volume, name: str, voxel_size_um) -> tuple[pl.DataFrame, float]:
    """The shipped detector on every layer of a registered volume, linked through depth (as ``spines_3d``),
    and the seconds detection took."""
    start = time.perf_counter()
    boxes = detector.detect_stack(volume, score_threshold=SCORE_THRESHOLD, batch_size=SETTINGS.batch_size)
    seconds = time.perf_counter() - start
    linked = link_table(boxes.with_columns(stack=pl.lit(name)), DepthLinkParams())
    return summarize_spines(linked, voxel_size_um), seconds


def alignment_error(sessions, tracker, inputs) -> list[float]:
    """Mean distance (px) between true positions in session t and positions mapped from t - 1."""
    errors = []
    for t in range(1, len(sessions)):
        step = tracker.alignment(inputs[t - 1], inputs[t])
        both = (
            sessions[t - 1]
            .spines.join(sessions[t].spines, on="spine_id", suffix="_b")
            .filter(pl.col("status").is_in(["present", "new"]) & (pl.col("status_b") == "present"))
        )
        mapped = step.map_points(both.select("y", "x").to_numpy())
        errors.append(float(np.hypot(*(mapped - both.select("y_b", "x_b").to_numpy()).T).mean()))
    return errors


def default_session_detector_seconds(detector) -> float:
    """Detector seconds for one whole default-size session (dark layers are cheaper, so all layers are timed)."""
    volume = register_layers(simulate_animal(PARAMS, n_sessions=1, seed=0)[0].volume)[0]
    start = time.perf_counter()
    detector.detect_stack(volume, score_threshold=SCORE_THRESHOLD, batch_size=4)
    return time.perf_counter() - start


def track_and_score(source: str, sessions, volumes, spines, truth_spines, tmp, seed) -> tuple[dict, object, list, list]:
    """Track one animal's sessions from ``spines`` and score the tracks against the true spines."""
    inputs = [
        SessionInput(f"day{4 * s.index:02d}", sp, v.shape, f"{source}{s.index}", lambda v=v: v)
        for s, sp, v in zip(sessions, spines, volumes, strict=False)
    ]
    tracker = AnimalTracker(tmp / f"cache-{seed}-{source}")
    start = time.perf_counter()
    tracks, report = tracker.track(inputs)
    result = {f"{source}_seconds": time.perf_counter() - start}
    indexed = pl.concat([sp.with_columns(session_index=pl.lit(k, pl.Int64)) for k, sp in enumerate(spines)])
    truth = pl.concat([t.with_columns(session_index=pl.lit(k, pl.Int64)) for k, t in enumerate(truth_spines)])
    scores = identity_scores(truth, tracks, indexed)
    result.update(
        {
            f"{source}_idf1": scores["idf1"],
            f"{source}_hota": scores["hota"],
            f"{source}_mota": scores["mota"],
            f"{source}_switches": scores["id_switches"],
        }
    )
    return result, tracker, inputs, (tracks, report, indexed)


def simulate(params, n_sessions: int, seed: int):
    sessions = simulate_animal(params, n_sessions=n_sessions, seed=seed)
    volumes = [register_layers(s.volume)[0] for s in sessions]
    truth_spines = [summarize_spines(s.boxes.rename({"spine_id": "id"}), s.voxel_size_um) for s in sessions]
    return sessions, volumes, truth_spines


def run_animal(seed: int, n_sessions: int, tmp, modes: list[str], detector=None, detector_params=None) -> dict:
    sessions, volumes, truth_spines = simulate(PARAMS, n_sessions, seed)
    result = {"animal": seed}
    scored, tracker, inputs, (tracks, report, indexed) = track_and_score(
        "truth", sessions, volumes, truth_spines, truth_spines, tmp, seed
    )
    result.update(scored)
    statuses = pl.concat(
        [s.spines.select("spine_id", "status").with_columns(session_index=pl.lit(s.index, pl.Int64)) for s in sessions]
    )
    result["status_accuracy"], confusion = status_accuracy(
        statuses, indexed.select("session_index", "spine_id"), tracks
    )
    result["alignment_error_px"] = float(np.mean(alignment_error(sessions, tracker, inputs)))
    result["z_shift_exact"] = float(
        np.mean(
            [r["z_shift"] == round(sessions[t + 1].drift_px[0] - sessions[t].drift_px[0]) for t, r in enumerate(report)]
        )
    )
    result["consistency_px"] = float(np.mean([r["consistency_px"] for r in report if r["consistency_px"] is not None]))
    result["confusion"] = confusion.rows()
    if "simulated" in modes:
        spines = [detected_spines(s, tmp) for s in sessions]
        result.update(track_and_score("simulated", sessions, volumes, spines, truth_spines, tmp, seed)[0])
    if "detector" in modes:
        small, small_volumes, small_truth = (
            simulate(detector_params, n_sessions, seed)
            if detector_params.shape != PARAMS.shape
            else (sessions, volumes, truth_spines)
        )
        found = [
            detector_spines(detector, v, f"s{s.index}", s.voxel_size_um)
            for s, v in zip(small, small_volumes, strict=False)
        ]
        result["detector_seconds_per_session"] = float(np.mean([seconds for _, seconds in found]))
        result.update(
            track_and_score("detector", small, small_volumes, [sp for sp, _ in found], small_truth, tmp, seed)[0]
        )
    return result


def incremental_cost(n_before: int, tmp) -> float:
    """Seconds to add one session to an animal that already has ``n_before`` tracked sessions."""
    sessions = simulate_animal(PARAMS, n_sessions=n_before + 1, seed=99)
    inputs = [
        SessionInput(
            f"day{k:02d}",
            summarize_spines(s.boxes.rename({"spine_id": "id"}), s.voxel_size_um),
            s.volume.shape,
            f"v{k}",
            lambda v=s.volume: v,
        )
        for k, s in enumerate(sessions)
    ]
    tracker = AnimalTracker(tmp / f"incremental-{n_before}")
    tracker.track(inputs[:n_before])
    start = time.perf_counter()
    tracker.track(inputs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--animals", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument(
        "--detections",
        choices=["detector", "simulated", "both"],
        default="detector",
        help="where the detected spines come from (default: the shipped detector)",
    )
    parser.add_argument(
        "--detector-shape",
        default="32,256,256",
        help="z,y,x of the sessions the detector column runs on (default 32,256,256: see the docstring)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads for the detector")
    args = parser.parse_args()
    modes = ["detector", "simulated"] if args.detections == "both" else [args.detections]
    detector, detector_params = None, None
    if "detector" in modes:
        import torch

        torch.set_num_threads(args.threads)
        detector = load_detector()
        detector_params = replace(PARAMS, shape=tuple(int(v) for v in args.detector_shape.split(",")))
    with tempfile.TemporaryDirectory() as folder:
        from pathlib import Path

        tmp = Path(folder)
        rows = [run_animal(seed, args.sessions, tmp, modes, detector, detector_params) for seed in range(args.animals)]
        add_2, add_10 = incremental_cost(2, tmp), incremental_cost(10, tmp)
    table = pl.DataFrame([{k: v for k, v in r.items() if k != "confusion"} for r in rows])
    with pl.Config(tbl_cols=-1, tbl_width_chars=260, float_precision=3, tbl_hide_dataframe_shape=True):
        print(table)
    print(f"truth_*: tracked from the true 3D spines on {PARAMS.shape[0]}x{PARAMS.shape[1]}x{PARAMS.shape[2]} sessions")
    if "simulated" in modes:
        print(
            f"simulated_*: simulated detector output (truth with jitter, misses, false positives) linked "
            "through depth, "
            f"same {PARAMS.shape[0]}x{PARAMS.shape[1]}x{PARAMS.shape[2]} sessions"
        )
    if "detector" in modes:
        shape = "x".join(str(v) for v in detector_params.shape)
        per_session = float(np.mean([r["detector_seconds_per_session"] for r in rows]))
        note = ""
        if detector_params.shape != PARAMS.shape:
            full = default_session_detector_seconds(detector)
            note = (
                f" (smaller than the default 32x512x512 to keep the run short: here the detector takes "
                f"{per_session:.0f} s per "
                f"{shape} session and about {full:.0f} s per 32x512x512 one, i.e. "
                f"~{full * args.animals * args.sessions / 60:.0f} min "
                f"for {args.animals}x{args.sessions} sessions)"
            )
        print(
            f"detector_*: the shipped detector (score >= {SCORE_THRESHOLD}) + depth linking on {shape} sessions{note}"
        )
    pair_seconds = float(np.mean([r["truth_seconds"] for r in rows]) / (args.sessions - 1))
    print(
        f"align + match one 32x512x512 pair: {pair_seconds:.2f} s (first run, both directions of the local "
        "field included)"
    )
    print(f"adding a session after 2 sessions: {add_2:.2f} s; after 10 sessions: {add_10:.2f} s")
    for r in rows:
        print(f"animal {r['animal']} status confusion (truth, ours, count): {r['confusion']}")
    summary = {c: float(table[c].mean()) for c in table.columns if c != "animal"}
    print(
        json.dumps(
            {
                "mean": summary,
                "pair_seconds": pair_seconds,
                "add_session_after_2_s": add_2,
                "add_session_after_10_s": add_10,
                "detections": modes,
                "detector_shape": list(detector_params.shape) if detector_params else None,
                "animals": rows,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
