"""Real-input readiness: session alignment on sparse single planes and dense z-stacks, and loud failures.

1. Sparse single-plane time-lapse: 1024 px projections of one dendrite (30-50 spines in view), drift up
   to 80 px and rotation up to 1.5 degrees between consecutive sessions, smooth deformation, brightness
   changes; at the default photon count and at a low one (raw-like shot noise); and a stress set where
   every session is displaced 77-81 px from the first (so up to 160 px from the previous one) and
   rotated 0.7-0.75 degrees either way.
2. Today's dense z-stacks (32x512x512, 2-3 dendrites): the same, as a regression check.
3. Failure cases through ``python -m synapflow_assets ingest`` (a fresh data root): a truncated TIFF, a
   file that is not a TIFF, a blank image, a session of another field of view, an invalid settings
   file and an invalid animal name; counts the one-line messages, the exit code and tracebacks.

Alignment error: mean distance (px) between the true head positions of the spines present in both
sessions and the positions mapped from the earlier session. Every pair must be aligned (gate passed).

Run: .venv/bin/python bench/real_inputs.py [--animals 3 --sessions 4]
Prints a table and one JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from synapflow_assets.imaging.registration import register_layers
from synapflow_assets.synthetic import SimulationParams, project_session, simulate_animal, write_session
from synapflow_assets.tracking.align import align_sessions

SPARSE = SimulationParams(
    shape=(16, 1024, 1024),
    n_dendrites=(1, 1),
    spine_density_per_um=(0.25, 0.4),
    max_drift_px=40,
    max_rotation_deg=0.75,
    world_margin_um=12.0,
    max_drift_layers=1,
    layer_jitter_px=0.0,
    max_brightness_change=0.3,
)
DENSE = SimulationParams(
    max_drift_px=30, max_drift_layers=4, max_rotation_deg=0.75, deformation_px=2, max_brightness_change=0.3
)
SETS = {
    "sparse single plane 1024 px": (SPARSE, True),
    "sparse single plane 1024 px, low light": (
        SimulationParams(**{**SPARSE.__dict__, "photons_per_voxel": 150.0}),
        True,
    ),
    "sparse single plane 1024 px, every session moved 77-81 px": (
        SimulationParams(**{**SPARSE.__dict__, "max_drift_px": 57.0, "min_motion_fraction": 0.95}),
        True,
    ),
    "dense z-stack 32x512x512": (DENSE, False),
}


def pair_error(alignment, earlier, later) -> float:
    both = earlier.spines.join(later.spines, on="spine_id", suffix="_b").filter(
        pl.col("status").is_in(["present", "new"]) & (pl.col("status_b") == "present")
    )
    mapped = alignment.map_points(both.select("y", "x").to_numpy())
    return float(np.hypot(*(mapped - both.select("y_b", "x_b").to_numpy()).T).mean())


def alignment_rows(name: str, params: SimulationParams, single: bool, animals: int, sessions: int) -> dict:
    errors, aligned, seconds, spines, drifts, rotations = [], [], [], [], [], []
    for animal in range(animals):
        sims = simulate_animal(params, n_sessions=sessions, seed=100 + animal)
        sims = [project_session(s) for s in sims] if single else sims
        volumes = [s.volume if single else register_layers(s.volume)[0] for s in sims]
        for t in range(1, sessions):
            start = time.perf_counter()
            step = align_sessions(volumes[t - 1], volumes[t])
            seconds.append(time.perf_counter() - start)
            aligned.append(step.ok)
            errors.append(pair_error(step, sims[t - 1], sims[t]))
            spines.append(int((sims[t].spines["status"].is_in(["present", "new"])).sum()))
            drifts.append(float(np.hypot(*np.subtract(sims[t].drift_px[1:], sims[t - 1].drift_px[1:]))))
            rotations.append(abs(sims[t].rotation_deg - sims[t - 1].rotation_deg))
    return {
        "set": name,
        "pairs": len(aligned),
        "aligned": int(sum(aligned)),
        "mean_error_px": float(np.mean(errors)),
        "max_error_px": float(np.max(errors)),
        "spines_in_view": f"{min(spines)}-{max(spines)}",
        "max_drift_px": float(np.max(drifts)),
        "max_rotation_deg": float(np.max(rotations)),
        "seconds_per_pair": float(np.median(seconds)),
    }


def failure_cases(root: Path) -> dict:
    """Land the bad inputs beside one good animal and run ``ingest`` as a user would."""
    import tifffile

    landing = root / "data" / "landing"
    good = simulate_animal(SimulationParams(shape=(8, 192, 192)), n_sessions=2, seed=7)
    for sim in good:
        write_session(sim, landing, "good", f"day{4 * sim.index:02d}")
    bad = landing / "bad"
    bad.mkdir(parents=True)
    tifffile.imwrite(bad / "truncated.tif", np.ones((4, 64, 64), np.uint16))
    (bad / "truncated.tif").write_bytes((bad / "truncated.tif").read_bytes()[:2000])
    (bad / "notatiff.tif").write_text("hello")
    tifffile.imwrite(bad / "blank.tif", np.zeros((4, 64, 64), np.uint16))
    for sim in good:
        write_session(sim, landing, "elsewhere", f"day{4 * sim.index:02d}")
    other = simulate_animal(SimulationParams(shape=(8, 192, 192)), n_sessions=1, seed=99)[0]
    write_session(other, landing, "elsewhere", "day04")
    (landing / "settings").mkdir()
    for sim in good[:1]:
        write_session(sim, landing, "settings", "day00")
    (landing / "settings" / "synapflow.yaml").write_text("imaging:\n  pixel_size: 0.1\n")
    (landing / "bad name").mkdir()
    tifffile.imwrite(landing / "bad name" / "day00.tif", np.ones((4, 64, 64), np.uint16))
    env = {**os.environ, "DAGSTER_HOME": str(root)}
    (root / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(root / "data"), "--source", "imported"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith(("FAILED", "SKIPPED"))]
    for line in lines:
        print("   ", line[:160])
    return {
        "exit_code": done.returncode,
        "failure_lines": len(lines),
        "expected_failures": 8,
        "tracebacks": (done.stdout + done.stderr).count("Traceback"),
        "stderr_lines": len(done.stderr.splitlines()),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--animals", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for name, (params, single) in SETS.items():
        rows.append(alignment_rows(name, params, single, args.animals, args.sessions))
        print(f"  {name}: done", flush=True)
    with pl.Config(tbl_rows=-1, tbl_width_chars=200, tbl_hide_dataframe_shape=True, float_precision=2):
        print(pl.DataFrame(rows))
    with tempfile.TemporaryDirectory() as tmp:
        failures = failure_cases(Path(tmp))
    print(
        f"failure cases: exit code {failures['exit_code']}, {failures['failure_lines']} one-line messages "
        f"(expected {failures['expected_failures']}), {failures['tracebacks']} tracebacks, "
        f"{failures['stderr_lines']} lines on stderr, {failures['seconds']:.1f} s"
    )
    print(json.dumps({"alignment": rows, "failures": failures}))


if __name__ == "__main__":
    main()
