"""Spine detector benchmark: the shipped transformer detector against the LoG baseline.

Data
----
- simulated held-out layers: ``synapflow_assets.synthetic.simulate_animal`` with
  seeds 5,000,000+ (never used by training, which draws ``seed * 1000 + 1 ...``
  and ``10,000,000 + seed``), 512 x 512, the layers that show spines; boxes in
  image pixels (the layer jitter applied, as in training);
- real ``../shared/data/spine2d_polygons/val`` (``$SYNAPFLOW_SHARED_DATA``
  overrides the shared root): YOLO boxes / polygons, box = polygon extent,
  classes 0..4 = mushroom, stubby, branched, thin, filopodium.

Scores (``synapflow_assets.detection.evaluation.detection_scores``, COCO via
pycocotools): AP50, AP50:95 and per-type AP50 / mAP50 on all predictions with
score >= ``--ap-threshold``; precision / recall / F1 at IoU 0.5 (and at a
centre distance of 4 px) at the operating threshold ``--threshold``. Every image is
detected on its own (``detect_layer``). On real layers the model is also
run with a test-time zoom (``--upscale``, boxes divided by it), with tiles
near its training crop size (``--tile``), each also with a box-size factor
calibrated on the real train split
(``synapflow_assets.detection.calibration``), since its boxes on real spines
are too large. Speed:
512 x 512 layers per second on ``--threads`` CPU threads (after a warm-up),
peak resident memory of this process (``resource.getrusage``), and the shipped
model's training wall time from its ``metrics.json``.

Run: .venv/bin/python bench/detector.py [--model FOLDER] [--sim-animals 2]
Prints a table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from synapflow_assets.detection.baseline import LogBlobDetector
from synapflow_assets.detection.evaluation import detection_scores

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "synapflow_assets" / "detection" / "shipped"
SIM_SEED = 5_000_000
ROW_KEYS = ["ap50", "ap50_95", "precision", "recall", "f1", "f1_centre", "map50"]


def samples_table(samples, types) -> pl.DataFrame:
    """Truth boxes of ``data.Sample`` objects as an evaluation table (image = sample name)."""
    rows = [pl.DataFrame({"image": [s.name] * len(s.boxes), "xmin": s.boxes[:, 0].astype(float),
                          "ymin": s.boxes[:, 1].astype(float), "xmax": s.boxes[:, 2].astype(float),
                          "ymax": s.boxes[:, 3].astype(float),
                          "type": [types[int(k)] for k in s.labels]},
                         schema={"image": pl.String, "xmin": pl.Float64, "ymin": pl.Float64,
                                 "xmax": pl.Float64, "ymax": pl.Float64, "type": pl.String})
            for s in samples]
    return pl.concat(rows)


def simulated_samples(n_animals: int, seed: int):
    from synapflow_assets.detection.data import session_samples
    from synapflow_assets.synthetic import SimulationParams, simulate_animal

    samples = []
    for animal in range(n_animals):
        session = simulate_animal(SimulationParams(), n_sessions=1, seed=seed + animal)[0]
        samples += session_samples(session, f"sim{seed + animal}")
    return samples


def predict(detector, samples, score_threshold: float) -> tuple[pl.DataFrame, float]:
    """Predictions on every sample, one layer at a time (the images are not one stack, so no layer's
    normalisation may depend on the others); returns (table, seconds)."""
    tables, seconds = [], 0.0
    for s in samples:
        start = time.perf_counter()
        found = detector.detect_layer(s.image, score_threshold=score_threshold)
        seconds += time.perf_counter() - start
        tables.append(found.with_columns(image=pl.lit(s.name)))
    return pl.concat(tables).with_columns(pl.col("type").cast(pl.String)), seconds


def real_variants(args) -> dict:
    """The model on real layers with a test-time zoom (``--upscale``) and with small tiles (``--tile``),
    each also with a box-size factor calibrated on ``--calib-images`` images of the real train split
    (``--box-scale`` fixes it instead)."""
    from synapflow_assets.detection.calibration import calibrate_box_scale
    from synapflow_assets.detection.data import real_samples
    from synapflow_assets.detection.inference import SpineDetector

    train = real_samples("train") if args.box_scale is None else []
    pick = [train[i] for i in sorted(np.random.default_rng(0).choice(
        len(train), min(args.calib_images, len(train)), replace=False))] if train else []
    detectors, calibrations = {}, {}
    for name, options in ((f"upscale{args.upscale:g}", {"upscale": args.upscale}), (f"tile{args.tile}", {"tile": args.tile})):
        detector = SpineDetector.load(args.model, device="cpu").set_options(**options)
        detectors[f"model_{name}"] = detector
        box_scale = args.box_scale
        if pick:
            calibrations[name] = calibrate_box_scale(detector, pick, args.calib_score)
            box_scale = calibrations[name]["box_scale"]
        if box_scale is not None:
            detectors[f"model_{name}_box{box_scale:g}"] = SpineDetector.load(args.model, device="cpu").set_options(
                **options, box_scale=box_scale)
    return {"detectors": detectors, "calibration": calibrations}


def score(truth, predicted, threshold) -> dict:
    """AP on all predictions, P/R/F1 at the operating threshold."""
    ap = detection_scores(truth, predicted)
    op = detection_scores(truth, predicted.filter(pl.col("score") >= threshold), per_type=False)
    out = {k: ap[k] for k in ("ap50", "ap50_95", "map50", "ap50_per_type")}
    out.update({k: op[k] for k in ("precision", "recall", "f1", "precision_centre", "recall_centre",
                                    "f1_centre", "tp", "fp", "fn", "n_truth")})
    out["n_predicted"] = op["n_predicted"]
    return out


def throughput(detector, layers: np.ndarray, repeats: int = 2) -> float:
    """512 x 512 layers per second (after one warm-up call)."""
    detector.detect_stack(layers[:2], score_threshold=0.5)
    start = time.perf_counter()
    for _ in range(repeats):
        detector.detect_stack(layers, score_threshold=0.5)
    return repeats * len(layers) / (time.perf_counter() - start)


def find_wall_seconds(metrics) -> float | None:
    """Training wall time in a metrics.json: the first key mentioning 'wall' (searched recursively)."""
    if isinstance(metrics, dict):
        for key in ("training_wall_seconds", "train_wall_seconds", "wall_seconds"):
            if isinstance(metrics.get(key), (int, float)):
                return float(metrics[key])
        for key, value in metrics.items():
            if "wall" in key and isinstance(value, (int, float)):
                return float(value)
        for key, value in metrics.items():
            if key != "history":
                found = find_wall_seconds(value)
                if found is not None:
                    return found
    return None


def fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED, help="detector folder (default: the shipped one)")
    parser.add_argument("--sim-animals", type=int, default=2, help="held-out simulated animals (one session each)")
    parser.add_argument("--sim-seed", type=int, default=SIM_SEED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.5, help="operating score threshold for P/R/F1")
    parser.add_argument("--ap-threshold", type=float, default=0.05, help="lowest score kept for AP")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--real-folder", type=Path, default=None,
                        help="real val folder (default: <shared data>/spine2d_polygons/val)")
    parser.add_argument("--upscale", type=float, default=2.0, help="test-time zoom of the real-data variants")
    parser.add_argument("--tile", type=int, default=256, help="tile size of the real-data variants")
    parser.add_argument("--box-scale", type=float, default=None,
                        help="box-size factor of the real-data variant (default: calibrated on the train split)")
    parser.add_argument("--calib-images", type=int, default=40, help="train images for the box-size calibration")
    parser.add_argument("--calib-score", type=float, default=0.35, help="score of the boxes paired for calibration")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from synapflow_assets.detection.data import real_samples, real_split_folder
    from synapflow_assets.detection.model import SPINE_TYPES

    detectors = {}
    model_info: dict = {"folder": str(args.model)}
    if (args.model / "model.safetensors").is_file():
        from synapflow_assets.detection.inference import SpineDetector

        detectors["model"] = SpineDetector.load(args.model, device="cpu")
        metrics_file = args.model / "metrics.json"
        if metrics_file.is_file():
            model_info["training_wall_seconds"] = find_wall_seconds(json.loads(metrics_file.read_text()))
    else:
        print(f"no detector in {args.model}: benchmarking the LoG baseline only", file=sys.stderr)
        model_info["missing"] = True
    if not args.no_baseline:
        detectors["log_baseline"] = LogBlobDetector()

    datasets = {}
    sim = simulated_samples(args.sim_animals, args.sim_seed)
    datasets["simulated"] = (sim, samples_table(sim, SPINE_TYPES))
    real_folder = args.real_folder or real_split_folder("val")
    real = real_samples("val", real_folder)
    if real:
        datasets["real_val"] = (real, samples_table(real, SPINE_TYPES))
    else:
        print(f"real validation set not found at {real_folder}: skipped", file=sys.stderr)

    variants = {"detectors": {}}
    if "real_val" in datasets and "model" in detectors:
        variants = real_variants(args)
        model_info["real_variants"] = {"upscale": args.upscale, "tile": args.tile,
                                       "calibration": variants["calibration"]}
    results = []
    for data_name, (samples, truth) in datasets.items():
        extra = variants["detectors"] if data_name == "real_val" else {}
        for det_name, detector in {**detectors, **extra}.items():
            predicted, seconds = predict(detector, samples, args.ap_threshold)
            row = {"data": data_name, "detector": det_name, "images": len(samples),
                   **score(truth, predicted, args.threshold), "seconds": seconds}
            results.append(row)

    speed = {}
    layers = np.stack([s.image for s in sim if s.image.shape == (512, 512)][:8])
    for det_name, detector in detectors.items():
        speed[det_name] = throughput(detector, layers)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    header = ["data", "detector", "images", "n_truth", *ROW_KEYS, "seconds"]
    print(" | ".join(f"{h:>12}" for h in header))
    for row in results:
        print(" | ".join(f"{fmt(row[h]):>12}" for h in header))
    for row in results:
        per = ", ".join(f"{k} {fmt(v)}" for k, v in row["ap50_per_type"].items())
        print(f"per-type AP50 {row['data']} / {row['detector']}: {per}")
    for name, value in speed.items():
        print(f"throughput {name}: {value:.2f} layers/s (512x512, {args.threads} threads)")
    print(f"peak memory: {peak_mib:.0f} MiB")
    if "training_wall_seconds" in model_info:
        wall = model_info["training_wall_seconds"]
        print(f"training wall time of {args.model.name}: "
              f"{'unknown' if wall is None else f'{wall:.0f} s ({wall / 60:.1f} min)'}")
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in results]
    print(json.dumps({"bench": "detector", "model": model_info, "results": clean,
                      "layers_per_second": speed, "threads": args.threads, "peak_memory_mib": peak_mib,
                      "sim_seed": args.sim_seed, "sim_animals": args.sim_animals}))


if __name__ == "__main__":
    main()
