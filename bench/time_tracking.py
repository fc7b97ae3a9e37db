"""Time tracking on simulated animals: alignment accuracy, identities, statuses and speed.

Default: 3 animals x 6 sessions, drift up to 30 px x/y and 4 layers z, rotation
up to 3 degrees, smooth deformation, 10% formation and elimination per session,
brightness changes up to 30%. Tracked twice: from the true 3D spines, and from
simulated detections linked through depth (the whole pipeline after detection).

Run: .venv/bin/python bench/time_tracking.py [--animals 3 --sessions 6]
Prints a table and one JSON line.
"""
import argparse
import json
import tempfile
import time

import numpy as np
import polars as pl

from synapflow_assets.evaluation.time_tracking import identity_scores, status_accuracy
from synapflow_assets.imaging.registration import register_layers
from synapflow_assets.synthetic import SimulationParams, simulate_animal
from synapflow_assets.synthetic.detector_noise import simulated_detections
from synapflow_assets.tracking.box_tables import link_table, read_reference_boxes
from synapflow_assets.tracking.incremental import AnimalTracker, SessionInput
from synapflow_assets.tracking.spines import summarize_spines

PARAMS = SimulationParams(max_drift_px=30, max_drift_layers=4, max_rotation_deg=3, deformation_px=2,
                          max_brightness_change=0.3, elimination_prob=0.1, formation_rate=0.1)


def detected_spines(sim, tmp) -> pl.DataFrame:
    """Simulated detector output linked through depth into 3D spines."""
    path = tmp / f"s{sim.index}.csv"
    simulated_detections(sim.boxes, f"s{sim.index}", sim.volume.shape[1:], seed=sim.index).write_csv(path)
    return summarize_spines(link_table(read_reference_boxes(path)), sim.voxel_size_um)


def alignment_error(sessions, tracker, inputs) -> list[float]:
    """Mean distance (px) between true positions in session t and positions mapped from t - 1."""
    errors = []
    for t in range(1, len(sessions)):
        step = tracker.alignment(inputs[t - 1], inputs[t])
        both = sessions[t - 1].spines.join(sessions[t].spines, on="spine_id", suffix="_b").filter(
            pl.col("status").is_in(["present", "new"]) & (pl.col("status_b") == "present"))
        mapped = step.map_points(both.select("y", "x").to_numpy())
        errors.append(float(np.hypot(*(mapped - both.select("y_b", "x_b").to_numpy()).T).mean()))
    return errors


def run_animal(seed: int, n_sessions: int, tmp) -> dict:
    sessions = simulate_animal(PARAMS, n_sessions=n_sessions, seed=seed)
    volumes = [register_layers(s.volume)[0] for s in sessions]
    truth_spines = [summarize_spines(s.boxes.rename({"spine_id": "id"}), s.voxel_size_um) for s in sessions]
    result = {"animal": seed}
    for source, spines in (("truth", truth_spines), ("detections", [detected_spines(s, tmp) for s in sessions])):
        inputs = [SessionInput(f"day{4 * s.index:02d}", sp, v.shape, f"{source}{s.index}", lambda v=v: v)
                  for s, sp, v in zip(sessions, spines, volumes)]
        tracker = AnimalTracker(tmp / f"cache-{seed}-{source}")
        start = time.perf_counter()
        tracks, report = tracker.track(inputs)
        result[f"{source}_seconds"] = time.perf_counter() - start
        indexed = pl.concat([sp.with_columns(session_index=pl.lit(k, pl.Int64)) for k, sp in enumerate(spines)])
        truth = pl.concat([t.with_columns(session_index=pl.lit(k, pl.Int64)) for k, t in enumerate(truth_spines)])
        scores = identity_scores(truth, tracks, indexed)
        result.update({f"{source}_idf1": scores["idf1"], f"{source}_hota": scores["hota"],
                       f"{source}_mota": scores["mota"], f"{source}_switches": scores["id_switches"]})
        if source == "truth":
            statuses = pl.concat([s.spines.select("spine_id", "status").with_columns(session_index=pl.lit(s.index, pl.Int64))
                                  for s in sessions])
            observed = indexed.select("session_index", "spine_id")
            result["status_accuracy"], confusion = status_accuracy(statuses, observed, tracks)
            result["alignment_error_px"] = float(np.mean(alignment_error(sessions, tracker, inputs)))
            result["z_shift_exact"] = float(np.mean([
                r["z_shift"] == round(sessions[t + 1].drift_px[0] - sessions[t].drift_px[0]) for t, r in enumerate(report)]))
            result["confusion"] = confusion.rows()
    return result


def incremental_cost(n_before: int, tmp) -> float:
    """Seconds to add one session to an animal that already has ``n_before`` tracked sessions."""
    sessions = simulate_animal(PARAMS, n_sessions=n_before + 1, seed=99)
    inputs = [SessionInput(f"day{k:02d}", summarize_spines(s.boxes.rename({"spine_id": "id"}), s.voxel_size_um),
                           s.volume.shape, f"v{k}", lambda v=s.volume: v) for k, s in enumerate(sessions)]
    tracker = AnimalTracker(tmp / f"incremental-{n_before}")
    tracker.track(inputs[:n_before])
    start = time.perf_counter()
    tracker.track(inputs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--animals", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        from pathlib import Path

        tmp = Path(folder)
        rows = [run_animal(seed, args.sessions, tmp) for seed in range(args.animals)]
        add_2, add_10 = incremental_cost(2, tmp), incremental_cost(10, tmp)
    table = pl.DataFrame([{k: v for k, v in r.items() if k != "confusion"} for r in rows])
    with pl.Config(tbl_cols=-1, tbl_width_chars=220, float_precision=3, tbl_hide_dataframe_shape=True):
        print(table)
    pair_seconds = float(np.mean([r["truth_seconds"] for r in rows]) / (args.sessions - 1))
    print(f"align + match one 32x512x512 pair: {pair_seconds:.2f} s (first run, both directions of the chain included)")
    print(f"adding a session after 2 sessions: {add_2:.2f} s; after 10 sessions: {add_10:.2f} s")
    for r in rows:
        print(f"animal {r['animal']} status confusion (truth, ours, count): {r['confusion']}")
    summary = {c: float(table[c].mean()) for c in table.columns if c != "animal"}
    print(json.dumps({"mean": summary, "pair_seconds": pair_seconds, "add_session_after_2_s": add_2,
                      "add_session_after_10_s": add_10, "animals": rows}, default=str))


if __name__ == "__main__":
    main()
