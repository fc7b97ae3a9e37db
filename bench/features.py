"""Benchmark of spine features on simulated data: accuracy against ground truth and time per session.

Run: ``.venv/bin/python bench/features.py [--animals 3] [--sessions 4] [--no-stability]``. Prints a table and one
JSON line.

Morphology (issue 28), against the simulator's truth (``spines``: ``head_radius_um`` across the spine axis,
``neck_length_um``, ``size`` = head volume in um^3): median absolute error and Spearman of ``head_diameter_um``,
of ``neck_length_um`` (MAE on necks >= 0.5 um) and Spearman of ``head_volume_um3``; the ``*_before`` figures are
what the table gave before (``head_width_um``; ``head_to_dendrite_um - head_width_um / 2`` as the shape rules
read it; ``size``). Size stability: the same animals simulated again with no size change, no turnover and
brightness changes of up to +-30 % (plus the usual drift in z, i.e. focus changes); per spine seen in at least
3 sessions the coefficient of variation of each size column across sessions, median over spines.
"""

import argparse
import json
import time

import numpy as np
import polars as pl
from scipy.stats import spearmanr

from synapflow_assets.features import spine_features
from synapflow_assets.synthetic import SimulationParams, simulate_animal
from synapflow_assets.tracking.spines import summarize_spines


def nearest_head(geometry: pl.DataFrame) -> pl.DataFrame:
    """Per spine, the x/y distance (px) to the nearest other true head within 2 layers (inf when none).

    Heads closer than ``ISOLATED_PX`` (1 um) overlap after the blur: the simulator
    places spines independently, so such heads may even intersect, and no
    measurement can tell their centres apart. The figures are also given
    without them.
    """
    y, x, z = (geometry[c].to_numpy() for c in ("head_y", "head_x", "head_z"))
    d = np.hypot(y[:, None] - y[None], x[:, None] - x[None])
    d[np.abs(z[:, None] - z[None]) > 2] = np.inf
    np.fill_diagonal(d, np.inf)
    return pl.DataFrame({"spine_id": geometry["spine_id"], "nearest_head_px": d.min(1)})


ISOLATED_PX = 8.0
STABILITY_COLUMNS = ("size", "head_volume_um3", "size_shaft_um", "head_diameter_um")


def _mae_rho(est: pl.Series, truth: pl.Series) -> dict:
    """Median absolute error and Spearman correlation where the estimate is finite."""
    ok = est.fill_null(np.nan).is_finite().to_numpy()
    e, t = est.to_numpy()[ok], truth.to_numpy()[ok]
    return {
        "mae": round(float(np.median(np.abs(e - t))), 4),
        "spearman": round(float(spearmanr(e, t).statistic), 4),
        "found": round(float(ok.mean()), 4),
    }


def morphology(df: pl.DataFrame) -> dict:
    """Head diameter, neck length and head volume against the truth, now and before (see the docstring)."""
    df = df.with_columns(
        gt_diameter=2 * pl.col("gt_head_radius"),
        neck_before=(pl.col("head_to_dendrite_um") - pl.col("head_width_um") / 2).clip(0.0, None),
    )
    long = df.filter(pl.col("gt_neck") >= 0.5)
    return {
        "head_diameter": _mae_rho(df["head_diameter_um"], df["gt_diameter"]),
        "head_diameter_fwhm": _mae_rho(df["head_diameter_fwhm_um"], df["gt_diameter"]),
        "head_diameter_before": _mae_rho(df["head_width_um"], df["gt_diameter"]),
        "head_diameter_by_type_mae": {
            t: _mae_rho(g["head_diameter_um"], g["gt_diameter"])["mae"]
            for (t,), g in df.group_by("gt_type", maintain_order=True)
        },
        "neck_length": {
            **_mae_rho(df["neck_length_um"], df["gt_neck"]),
            "mae_necks_0.5um+": _mae_rho(long["neck_length_um"], long["gt_neck"])["mae"],
        },
        "neck_length_before": {
            **_mae_rho(df["neck_before"], df["gt_neck"]),
            "mae_necks_0.5um+": _mae_rho(long["neck_before"], long["gt_neck"])["mae"],
        },
        "neck_length_by_type_mae": {
            t: _mae_rho(g["neck_length_um"], g["gt_neck"])["mae"]
            for (t,), g in df.group_by("gt_type", maintain_order=True)
        },
        "head_volume": _mae_rho(df["head_volume_um3"], df["gt_size"]),
        "head_volume_before_size_spearman": _mae_rho(df["size"], df["gt_size"])["spearman"],
    }


def stability(animals: int, sessions: int) -> dict:
    """Median (and 90th percentile) over persistent, unchanged spines of the CV of each size across sessions."""
    params = SimulationParams(
        layer_jitter_px=0, size_walk_sigma=0.0, elimination_prob=0.0, formation_rate=0.0, max_brightness_change=0.3
    )
    rows = []
    for a in range(animals):
        for s in simulate_animal(params, sessions, seed=100 + a):
            boxes = s.boxes.rename({"spine_id": "id"})
            spines = summarize_spines(boxes, s.voxel_size_um).with_columns(type=pl.lit(None, pl.String))
            f = spine_features(s.volume, boxes, spines, s.voxel_size_um)
            rows.append(f.select("spine_id", *STABILITY_COLUMNS).with_columns(animal=pl.lit(a)))
    df = pl.concat(rows).with_columns(pl.col(STABILITY_COLUMNS).fill_nan(None))
    out = {}
    for c in STABILITY_COLUMNS:
        cv = (
            df.group_by("animal", "spine_id")
            .agg(cv=pl.col(c).std() / pl.col(c).mean(), n=pl.col(c).count())
            .filter(pl.col("n") >= 3)["cv"]
        )
        out[c] = {"cv_median": round(float(cv.median()), 4), "cv_p90": round(float(cv.quantile(0.9)), 4)}
    out["spines"] = int(cv.len())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--animals", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--no-stability", action="store_true", help="skip the size-stability simulation")
    args = ap.parse_args()
    params = SimulationParams(layer_jitter_px=0)  # default 32x512x512, volume in the boxes' frame
    rows, times = [], []
    for a in range(args.animals):
        for s in simulate_animal(params, args.sessions, seed=100 + a):
            boxes = s.boxes.rename({"spine_id": "id"})
            spines = summarize_spines(boxes, s.voxel_size_um).with_columns(type=pl.lit(None, pl.String))
            t0 = time.perf_counter()
            f = spine_features(s.volume, boxes, spines, s.voxel_size_um, along_dendrite=True)
            times.append(time.perf_counter() - t0)
            gt = (
                s.spines.select(
                    "spine_id",
                    gt_size="size",
                    gt_type="type",
                    gt_head_radius="head_radius_um",
                    gt_neck="neck_length_um",
                )
                .join(s.geometry.select("spine_id", gt_px="head_to_dendrite_px"), on="spine_id")
                .join(nearest_head(s.geometry), on="spine_id")
            )
            rows.append(f.join(gt, on="spine_id").with_columns(animal=pl.lit(a), session=pl.lit(s.index)))
    df = pl.concat(rows)
    within = (df["head_to_dendrite_px"] - df["gt_px"]).abs() <= 2
    alone = df.filter(pl.col("nearest_head_px") > ISOLATED_PX)
    per = [
        (
            a,
            t,
            spearmanr(g["size"], g["gt_size"]).statistic,
            ((g["head_to_dendrite_px"] - g["gt_px"]).abs() <= 2).fill_null(False).mean(),
            g.height,
        )
        for (a, t), g in df.group_by("animal", "session", maintain_order=True)
    ]
    print(f"{'animal':>6} {'session':>7} {'spines':>6} {'size_rho':>8} {'dist<=2px':>9}")
    for a, t, rho, w, n in per:
        print(f"{a:>6} {t:>7} {n:>6} {rho:>8.3f} {w:>9.3f}")
    result = {
        "spines": df.height,
        "size_spearman_pooled": round(float(spearmanr(df["size"], df["gt_size"]).statistic), 4),
        "size_spearman_session_median": round(float(np.median([p[2] for p in per])), 4),
        "distance_within_2px": round(float(within.fill_null(False).mean()), 4),
        "distance_found": round(float((df["distance_reason"] == "ok").mean()), 4),
        "isolated_spines": alone.height,
        "size_spearman_isolated": round(float(spearmanr(alone["size"], alone["gt_size"]).statistic), 4),
        "distance_within_2px_isolated": round(
            float(((alone["head_to_dendrite_px"] - alone["gt_px"]).abs() <= 2).fill_null(False).mean()), 4
        ),
        "distance_within_2px_by_type": {
            t: round(float(((g["head_to_dendrite_px"] - g["gt_px"]).abs() <= 2).fill_null(False).mean()), 3)
            for (t,), g in df.group_by("gt_type", maintain_order=True)
        },
        "size_spearman_by_type": {
            t: round(float(spearmanr(g["size"], g["gt_size"]).statistic), 3)
            for (t,), g in df.group_by("gt_type", maintain_order=True)
        },
        "along_dendrite_found": round(float(df["dendrite_position_um"].is_finite().mean()), 4),
        "shape_type_agreement": round(float((df["type"] == df["gt_type"]).fill_null(False).mean()), 4),
        "seconds_per_session_mean": round(float(np.mean(times)), 3),
        "seconds_per_session_max": round(float(np.max(times)), 3),
        "morphology": morphology(df),
    }
    if not args.no_stability:
        result["size_stability"] = stability(args.animals, args.sessions)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
