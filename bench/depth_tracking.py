"""Depth tracking scored on real expert annotations and on the simulator.

For each annotation variant of ../shared/data/depth_tracking_gt (or $SYNAPFLOW_SHARED_DATA):
relink the expert boxes with their ids stripped (clean), and boxes perturbed as a
detector would (2 px edge jitter, 10% dropped, 5% spurious; mean over seeds),
with the SynapFlow method's parameters and with ours. Then the same on the
simulator's ground truth, and the speed of a large case (20,000 boxes, 60 layers).
`ms` is the median of 5 runs of linking the clean boxes.

Run: .venv/bin/python bench/depth_tracking.py [--seeds 5]
Prints a table and one JSON line.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import polars as pl

from synapflow_assets.evaluation import tracking_scores
from synapflow_assets.synthetic import SimulationParams, simulate_animal
from synapflow_assets.synthetic.detector_noise import perturb_boxes
from synapflow_assets.tracking.box_tables import link_table, read_reference_boxes
from synapflow_assets.tracking.depth import METHOD_PARAMS, DepthLinkParams, link_layers

SHARED = Path(os.environ.get("SYNAPFLOW_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
VARIANTS = ["data_tracking", "data_tracking_min", "data_tracking_maj", "data_tracking_max"]
METRICS = ["mota", "idf1", "hota", "id_switches"]
SETTINGS = {"method": METHOD_PARAMS, "ours": DepthLinkParams()}


def score(truth: pl.DataFrame, boxes: pl.DataFrame, params: DepthLinkParams) -> tuple[dict, float]:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        linked = link_table(boxes.drop("id"), params)
        runs.append(time.perf_counter() - start)
    seconds = sorted(runs)[2]
    predicted = linked.filter(pl.col("id") >= 0).rename({"stack": "sequence"})
    scores = tracking_scores(truth.rename({"stack": "sequence"}), predicted)
    return {m: scores[m] for m in METRICS}, seconds


def relink(name: str, truth: pl.DataFrame, seeds: int) -> list[dict]:
    rows = []
    for setting, params in SETTINGS.items():
        clean, seconds = score(truth, truth, params)
        noisy = [score(truth, perturb_boxes(truth, seed=s), params)[0] for s in range(seeds)]
        perturbed = {m: float(np.mean([n[m] for n in noisy])) for m in METRICS}
        rows.append(
            {
                "data": name,
                "setting": setting,
                "boxes": len(truth),
                "ms": 1000 * seconds,
                **{f"clean_{m}": v for m, v in clean.items()},
                **{f"pert_{m}": v for m, v in perturbed.items()},
            }
        )
    return rows


def expert_truth(variant: str) -> pl.DataFrame:
    path = SHARED / "depth_tracking_gt" / f"{variant}.csv"
    return read_reference_boxes(path).with_columns(id=pl.read_csv(path)["id"])


def simulated_truth() -> pl.DataFrame:
    sessions = simulate_animal(SimulationParams(), n_sessions=3, seed=0, skip_render=(0, 1, 2))
    return (
        pl.concat([s.boxes.with_columns(stack=pl.lit(f"session{s.index}")) for s in sessions])
        .rename({"spine_id": "id"})
        .select("stack", "layer", "id", "xmin", "ymin", "xmax", "ymax")
    )


def large_case(n_boxes: int = 20_000, n_layers: int = 60, seed: int = 0) -> tuple[int, float]:
    rng = np.random.default_rng(seed)
    n_spines = n_boxes // 5
    start_layer = rng.integers(0, n_layers - 5, n_spines)
    length = rng.integers(3, 8, n_spines)
    spine = np.repeat(np.arange(n_spines), length)
    layer = start_layer[spine] + np.concatenate([np.arange(k) for k in length])
    centre = rng.random((n_spines, 2)) * 4000
    size = rng.uniform(8, 25, n_spines)
    boxes = np.hstack([centre[spine] - size[spine, None] / 2, centre[spine] + size[spine, None] / 2])
    boxes += rng.normal(0, 1.0, boxes.shape)
    start = time.perf_counter()
    link_layers(layer, boxes, DepthLinkParams())
    return len(layer), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    if (SHARED / "depth_tracking_gt").is_dir():
        for variant in VARIANTS:
            rows += relink(variant, expert_truth(variant), args.seeds)
    else:
        print(f"no expert annotations at {SHARED / 'depth_tracking_gt'}: real-data rows skipped")
    rows += relink("simulator", simulated_truth(), args.seeds)
    table = pl.DataFrame(rows)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, float_precision=3, tbl_hide_dataframe_shape=True):
        print(table)
    n_boxes, seconds = large_case()
    print(f"large case: {n_boxes} boxes over 60 layers linked in {seconds:.3f} s")
    print(json.dumps({"rows": rows, "large_case": {"boxes": n_boxes, "seconds": round(seconds, 3)}}))


if __name__ == "__main__":
    main()
