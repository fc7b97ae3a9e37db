"""Spine detector benchmark at default settings, against the targets of issue [2/7].

Data (none of it used for training or model selection)
------------------------------------------------------
- in vivo: the two raw two-photon layers of ``<shared data>/real_layers`` against
  an earlier public detector's boxes (not ground truth); a peer box is found
  when one of ours overlaps it with IoU >= 0.3, one to one; pixel size
  estimated from the dendrite width (the PNGs carry none). Overlays:
  ``<out>/invivo_<name>.png`` (green: peer, red: ours).
- raw-like: ``--raw-layers`` rendered raw layers (``synthetic.raw_layer``) of seed
  ``BENCH_RAW_SEED`` (training draws ``seed * 1000 + 7``, the gate 424242), at
  their known pixel sizes.
- spine2d val: ``<shared data>/spine2d_polygons/val``, no flags (pixel size estimated).
- time-lapse: ``--fields`` fields of 1024 x 1024 px at 0.1 um/px, each imaged
  ``--sessions`` times (same tissue, new noise, light and PSF); re-detection =
  share of the true spines found in one session (IoU >= 0.3) that are found
  again in the next, among spines visible in both.
- speed: 512 x 512 layers per second on ``--threads`` threads at the model's
  pixel size, and this process's peak resident memory.

Scores: COCO AP50 via ``synapflow_assets.detection.evaluation.detection_scores``
(the project's one AP50) on boxes with score >= 0.05; precision / recall at the
default score threshold 0.35.

Run: .venv/bin/python bench/detector.py [--model FOLDER]
Prints a table of targets and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "synapflow_assets" / "detection" / "shipped"
BENCH_RAW_SEED = 777_001
TIMELAPSE_SEED = 888_000
THRESHOLD = 0.35
#: Targets: (key, comparison, value); speed relative to the detector before issue [2/7] (5.6 layers/s, 1.1 GiB).
TARGETS = [
    ("invivo.found", ">=", 0.80),
    ("invivo.count_ratio", "<=", 1.5),
    ("raw.ap50", ">=", 0.90),
    ("spine2d.ap50", ">=", 0.90),
    ("spine2d.map50", ">=", 0.85),
    ("timelapse.redetected", ">=", 0.85),
    ("speed.layers_per_second", ">=", 5.6 / 1.5),
    ("speed.peak_memory_gib", "<=", 1.1 * 1.5),
]


def overlay(image: np.ndarray, peer: pl.DataFrame, ours: pl.DataFrame, path: Path) -> None:
    from PIL import Image, ImageDraw

    lo, hi = np.percentile(image, [1, 99.8])
    grey = (np.clip((image.astype(float) - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(grey).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for table, colour in ((peer, (0, 255, 0)), (ours, (255, 0, 0))):
        for x0, y0, x1, y1 in table.select("xmin", "ymin", "xmax", "ymax").iter_rows():
            draw.rectangle([x0, y0, x1, y1], outline=colour)
    picture.save(path)


def timelapse(detector, fields: int, sessions: int) -> dict:
    """Re-detection of the same spines in consecutive sessions of 1024 px single planes."""
    from synapflow_assets.geometry import box_iou
    from synapflow_assets.synthetic.raw_layer import RawLayerParams, render_raw_layer

    params = RawLayerParams(peak_photons=(30.0, 150.0), saturation=(0.6, 1.5), bit_depths=(12, 16))
    kept, again = 0, 0
    for field in range(fields):
        found_before = None
        for session in range(sessions):
            layer = render_raw_layer(
                np.random.default_rng([TIMELAPSE_SEED, field]),
                params,
                pixel_size_um=0.1,
                field_um=102.4,
                acquisition_rng=np.random.default_rng([TIMELAPSE_SEED, field, session]),
            )
            boxes = detector.detect_layer(layer.image, THRESHOLD, pixel_size_um=layer.pixel_size_um)
            predicted = boxes.select("xmin", "ymin", "xmax", "ymax").to_numpy()
            iou = (
                box_iou(layer.boxes, predicted)
                if len(predicted) and len(layer.boxes)
                else np.zeros((len(layer.boxes), 0))
            )
            found = set(layer.spine_id[(iou >= 0.3).any(axis=1)].tolist()) if iou.size else set()
            visible = set(layer.spine_id.tolist())
            if found_before is not None:
                candidates = found_before & visible
                kept += len(candidates)
                again += len(candidates & found)
            found_before = found
    return {"redetected": again / kept if kept else math.nan, "pairs": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED, help="detector folder (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--raw-layers", type=int, default=32)
    parser.add_argument("--fields", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "detector")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from synapflow_assets.detection.data import raw_like_samples
    from synapflow_assets.detection.inference import SpineDetector
    from synapflow_assets.detection.invivo import invivo_layers, invivo_scores
    from synapflow_assets.detection.real_data import real_samples
    from synapflow_assets.detection.throughput import layers_per_second
    from synapflow_assets.detection.training import evaluate

    detector = SpineDetector.load(args.model, device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"model": str(args.model), "model_pixel_size_um": detector.pixel_size_um}
    timings = {}

    start = time.perf_counter()
    layers = invivo_layers()
    if layers:
        scores = invivo_scores(detector, layers, THRESHOLD)
        for layer in layers:
            overlay(layer.image, layer.peer, scores["boxes"][layer.name], args.out / f"invivo_{layer.name}.png")
        results["invivo"] = {k: v for k, v in scores.items() if k != "boxes"}
    timings["invivo"] = time.perf_counter() - start

    start = time.perf_counter()
    raw = raw_like_samples(args.raw_layers, BENCH_RAW_SEED, workers=args.threads)
    results["raw"] = evaluate(detector, raw, THRESHOLD)
    timings["raw"] = time.perf_counter() - start

    start = time.perf_counter()
    val = real_samples("val")
    if val:
        results["spine2d"] = evaluate(detector, val, THRESHOLD)
    timings["spine2d"] = time.perf_counter() - start

    start = time.perf_counter()
    results["timelapse"] = timelapse(detector, args.fields, args.sessions)
    timings["timelapse"] = time.perf_counter() - start

    speed = layers_per_second(detector, 512, 8, threads=args.threads)
    results["speed"] = {
        "layers_per_second": speed,
        "peak_memory_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    results["seconds"] = {k: round(v, 1) for k, v in timings.items()}

    def get(key):
        section, name = key.split(".")
        return results.get(section, {}).get(name, math.nan)

    print(f"{'measure':<26} {'value':>8}  target")
    passed = {}
    for key, op, target in TARGETS:
        value = get(key)
        ok = bool(value >= target if op == ">=" else value <= target) if not math.isnan(value) else None
        passed[key] = ok
        print(f"{key:<26} {value:>8.3f}  {op} {target:.2f}  {'ok' if ok else ('n/a' if ok is None else 'MISSED')}")
    for name in ("raw", "spine2d"):
        if name in results:
            per = ", ".join(f"{t} {v:.2f}" for t, v in results[name].get("ap50_per_type", {}).items())
            print(f"per-type AP50 {name}: {per}")
    if "invivo" in results:
        print(
            "in vivo per layer: "
            + ", ".join(
                f"{n} {v['found']:.2f} of {v['n_peer']} ({v['n_predicted']} boxes)"
                for n, v in results["invivo"]["per_layer"].items()
            )
            + f"; overlays in {args.out}"
        )
    clean = json.loads(json.dumps(results, default=float).replace("NaN", "null"))
    print(json.dumps({"bench": "detector", **clean, "targets_met": passed}))


if __name__ == "__main__":
    main()
