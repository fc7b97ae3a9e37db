"""A big animal: 100,000 spines over 8 sessions through depth linking, alignment, time tracking, redetection
and the feature store; and ``track-depth`` on 200,000 boxes.

Inputs are synthetic and cheap. One large field (``--spines`` spines: about 240 px^2 each, e.g. 5,000 x 5,000 px
for 100,000) holds horizontal dendrites 24 px apart, wiggling a few px, with spines every 10 px alternating
sides. Each spine spans 2-4 of ``--layers`` layers. Per session the detector is simulated: 1 px box jitter,
8% of boxes missed (half of them answered below threshold, as candidates), 2% of spines boxed twice (shifted by
a third of their size: duplicates), false boxes for 1% of the spines, weak noise candidates. Between sessions
the tissue moves (a shift of up to 15 px and a smooth deformation of 1.5 px amplitude), 3% of the spines are
eliminated and 3% formed.

Alignment: ``align_sessions`` works on whole projections (its rotation search holds 17 rotated copies of
the projection and their FFTs), so on a 5,000 x 5,000 field it needs far more than 8 GB. The tracking stages
therefore get the true alignments, written into the tracker's cache as the tracker would have written them,
and alignment is measured separately on a ``--align-crop`` square of two rendered sessions (time, peak
memory, error against the true motion).

Volumes for the image evidence (redetection) are rendered once (Gaussian blobs at spines and along
dendrites, scipy.ndimage, plus noise) at the full field size and saved as .npy; the tracker loads them from
disk when it needs them, as the pipeline loads stored volumes.

Each stage's time and peak resident memory (VmHWM, reset before the stage) are measured in this process;
``track-depth`` runs as the CLI in a child process (its max RSS from ``os.wait4``).

Run: .venv/bin/python bench/big_animal.py [--spines 100000 --sessions 8 --depth-boxes 200000]
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
from scipy import ndimage

from synapflow_assets.store.feature_store import FeatureStore, lineage_columns
from synapflow_assets.tracking.align import Alignment, align_sessions
from synapflow_assets.tracking.box_tables import link_table
from synapflow_assets.tracking.duplicates import duplicate_keeper, merge_duplicate_boxes
from synapflow_assets.tracking.incremental import CACHE_FORMAT, AnimalTracker, SessionInput, _save_alignment
from synapflow_assets.tracking.redetection import track_with_evidence
from synapflow_assets.tracking.spines import summarize_spines

VOXEL_UM = (1.0, 0.12, 0.12)
GRID_STEP = 16
STAGES: list[dict] = []


def _hwm_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def stage(name: str, **extra):
    """Time a stage and its peak resident memory (the high-water mark is reset first)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
    start = time.perf_counter()
    info: dict = {"stage": name, **extra}
    yield info
    info["seconds"] = round(time.perf_counter() - start, 2)
    info["peak_mb"] = round(_hwm_mb())
    STAGES.append(info)
    print(f"  {name}: {info['seconds']:.1f} s, peak {info['peak_mb']:.0f} MB", flush=True)


# --- the field -------------------------------------------------------------------------------------------------


class Field:
    """Spines along dendrites of one large field, and how the tissue moves between sessions."""

    def __init__(self, n_spines: int, n_layers: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.size = int(np.ceil(np.sqrt(n_spines * 240)))
        self.n_layers = n_layers
        self.n_dendrites = self.size // 24
        self.phase = self.rng.uniform(0, 2 * np.pi, self.n_dendrites)
        per = int(np.ceil(n_spines / self.n_dendrites))
        dendrite = np.repeat(np.arange(self.n_dendrites), per)[:n_spines]
        x = 5 + 10 * np.tile(np.arange(per), self.n_dendrites)[:n_spines] + self.rng.normal(0, 1, n_spines)
        self.n_next = 0
        self.spines = self._spines(dendrite, np.clip(x, 4, self.size - 5), np.arange(n_spines) % 2)

    def dendrite_y(self, dendrite: np.ndarray, x: np.ndarray) -> np.ndarray:
        return 12 + 24 * dendrite + 3 * np.sin(2 * np.pi * x / 400 + self.phase[dendrite])

    def _spines(self, dendrite, x, side) -> pl.DataFrame:
        n = len(x)
        y = self.dendrite_y(dendrite, x) + np.where(side == 1, 7.0, -7.0)
        centre_z = self.rng.uniform(0.5, self.n_layers - 1.5, n)
        half_depth = self.rng.integers(1, 3, n) / 2
        ids = np.arange(self.n_next, self.n_next + n)
        self.n_next += n
        return pl.DataFrame(
            {
                "truth": ids,
                "x": x,
                "y": y,
                "half": self.rng.uniform(3, 5, n),
                "first": np.clip(np.round(centre_z - half_depth), 0, self.n_layers - 1).astype(np.int64),
                "last": np.clip(np.round(centre_z + half_depth), 0, self.n_layers - 1).astype(np.int64),
                "bright": self.rng.uniform(0.6, 1.4, n),
            }
        )

    def turnover(self, fraction: float) -> None:
        """Eliminate and form ``fraction`` of the spines."""
        n = len(self.spines)
        keep = self.rng.random(n) >= fraction
        formed = int(round(fraction * n))
        dendrite = self.rng.integers(0, self.n_dendrites, formed)
        x = self.rng.uniform(5, self.size - 5, formed)
        self.spines = pl.concat(
            [self.spines.filter(pl.Series(keep)), self._spines(dendrite, x, self.rng.integers(0, 2, formed))]
        )

    def motion(self, session: int) -> tuple[np.ndarray, np.ndarray]:
        """(shift (2,), deformation phases (2,)) of a session: tissue point p appears at p + shift + def(p)."""
        rng = np.random.default_rng(1000 + session)
        shift = np.zeros(2) if session == 0 else rng.uniform(-15, 15, 2)
        return shift, rng.uniform(0, 2 * np.pi, 2)

    @staticmethod
    def deformation(yx: np.ndarray, phases: np.ndarray) -> np.ndarray:
        y, x = yx[..., 0], yx[..., 1]
        return np.stack(
            [1.5 * np.sin(2 * np.pi * x / 800 + phases[0]), 1.5 * np.sin(2 * np.pi * y / 800 + phases[1])], axis=-1
        )

    def place(self, yx: np.ndarray, session: int) -> np.ndarray:
        shift, phases = self.motion(session)
        return yx + shift + self.deformation(yx, phases)


def session_boxes(field: Field, session: int, rng) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """Detected boxes (layer, boxes, score), candidates (down to 0.1) and the spines' (y, x, z-range) here."""
    sp = field.spines
    yx = field.place(sp.select("y", "x").to_numpy(), session)
    first, last = sp["first"].to_numpy(), sp["last"].to_numpy()
    length = last - first + 1
    spine = np.repeat(np.arange(len(sp)), length)
    layer = first[spine] + np.arange(len(spine)) - np.repeat(np.cumsum(length) - length, length)
    half = sp["half"].to_numpy()[spine] * (1 - 0.1 * np.abs(layer - (first[spine] + last[spine]) / 2))
    centre = yx[spine] + rng.normal(0, 0.5, (len(spine), 2))
    boxes = np.column_stack(
        [centre[:, 1] - half, centre[:, 0] - half, centre[:, 1] + half, centre[:, 0] + half]
    ) + rng.normal(0, 0.7, (len(spine), 4))
    score = rng.uniform(0.5, 0.95, len(spine))
    missed = rng.random(len(spine)) < 0.08
    doubled = np.flatnonzero(rng.random(len(sp)) < 0.02)
    twice = np.isin(spine, doubled)
    offset = (boxes[twice, 2:] - boxes[twice, :2]) / 3
    duplicate = boxes[twice] + np.hstack([offset, offset])
    n_false = len(sp) // 100
    false_centre = rng.uniform(10, field.size - 10, (n_false, 2))
    false_half = rng.uniform(3, 5, n_false)[:, None]
    false = np.hstack([false_centre - false_half, false_centre + false_half])
    detected = pl.DataFrame(
        {
            "layer": np.concatenate([layer[~missed], layer[twice], rng.integers(0, field.n_layers, n_false)]),
            **dict(
                zip(
                    ("xmin", "ymin", "xmax", "ymax"),
                    np.vstack([boxes[~missed], duplicate, false]).T,
                    strict=True,
                )
            ),
            "score": np.concatenate([score[~missed], score[twice] * 0.8, rng.uniform(0.35, 0.5, n_false)]),
        }
    )
    weak_missed = missed & (rng.random(len(spine)) < 0.5)
    n_noise = len(sp) // 20
    noise_centre = rng.uniform(10, field.size - 10, (n_noise, 2))
    noise = np.hstack([noise_centre - 4, noise_centre + 4])
    weak = pl.DataFrame(
        {
            "layer": np.concatenate([layer[weak_missed], rng.integers(0, field.n_layers, n_noise)]),
            **dict(zip(("xmin", "ymin", "xmax", "ymax"), np.vstack([boxes[weak_missed], noise]).T, strict=True)),
            "score": rng.uniform(0.1, 0.34, int(weak_missed.sum()) + n_noise),
        }
    )
    candidates = pl.concat([detected, weak])
    return detected, candidates, np.column_stack([yx, first, last])


def render(field: Field, session: int, spines_yxz: np.ndarray, size: int | None = None, seed: int = 0) -> np.ndarray:
    """A cheap volume (z, y, x) uint16: Gaussian blobs at the spines and along the dendrites, plus noise."""
    size = size or field.size
    nz = field.n_layers
    canvas = np.zeros((nz, size, size), np.float32)
    x = np.arange(0, field.size, 1.0)
    for d in range(field.n_dendrites):
        yx = field.place(np.column_stack([field.dendrite_y(np.full(len(x), d), x), x]), session)
        yi, xi = np.round(yx[:, 0]).astype(int), np.round(yx[:, 1]).astype(int)
        ok = (yi >= 0) & (yi < size) & (xi >= 0) & (xi < size)
        canvas[:, yi[ok], xi[ok]] = 0.6
    y, x_, first, last = (spines_yxz[:, k] for k in range(4))
    for z in range(nz):
        on = (first <= z) & (last >= z)
        yi, xi = np.round(y[on]).astype(int), np.round(x_[on]).astype(int)
        ok = (yi >= 0) & (yi < size) & (xi >= 0) & (xi < size)
        np.add.at(canvas[z], (yi[ok], xi[ok]), 6.0)
    ndimage.gaussian_filter(canvas, (0.7, 1.8, 1.8), output=canvas)
    rng = np.random.default_rng(seed)
    for z in range(nz):
        canvas[z] *= 3000
        canvas[z] += 200 + rng.standard_normal((size, size), dtype=np.float32) * 30
    return np.clip(canvas, 0, 65535).astype(np.uint16)


def true_alignment(field: Field, earlier: int, later: int) -> Alignment:
    """The alignment from session ``earlier`` to ``later`` on a grid of ``GRID_STEP`` px (both directions)."""
    size = field.size
    grid = np.arange(GRID_STEP - 0.5, size, GRID_STEP)
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    points = np.stack([gy, gx], axis=-1)
    shift_a, phases_a = field.motion(earlier)
    shift_b, phases_b = field.motion(later)
    tissue = points - shift_a
    forward = field.deformation(tissue, phases_b) - field.deformation(tissue, phases_a)
    back = -(field.deformation(points - shift_b, phases_b) - field.deformation(points - shift_b, phases_a))
    d = shift_b - shift_a
    return Alignment(
        0.0,
        (float(d[0]), float(d[1])),
        0,
        np.moveaxis(forward, -1, 0),
        GRID_STEP,
        float(grid[0]),
        (size, size),
        50.0,
        1.0,
        0.1,
        1.0,
        np.moveaxis(back, -1, 0),
        1.0,
        0.1,
        0.1,
        structure_blocks=1000,
        decoy_peak=10.0,
    )


# --- stages ----------------------------------------------------------------------------------------------------


def depth_stage(boxes: list[pl.DataFrame]) -> list[pl.DataFrame]:
    spines = []
    for k, detected in enumerate(boxes):
        linked = link_table(detected.with_columns(stack=pl.lit(f"s{k}")))
        keepers = duplicate_keeper(summarize_spines(linked, VOXEL_UM))
        spines.append(summarize_spines(merge_duplicate_boxes(linked, keepers), VOXEL_UM))
    return spines


def track_depth_cli(n_boxes: int, folder: Path) -> dict:
    """``track-depth`` on about ``n_boxes`` boxes of one stack (reference CSV), in a child process."""
    n_layers = 30
    field = Field(int(n_boxes / 2.3), n_layers, seed=7)
    detected, _, _ = session_boxes(field, 0, np.random.default_rng(7))
    detected = detected.sample(n=min(n_boxes, len(detected)), seed=7)
    table = detected.select(
        filename=pl.format("field_layer{}.png", pl.col("layer").cast(pl.String).str.zfill(2)),
        width=pl.lit(field.size),
        height=pl.lit(field.size),
        **{"class": pl.lit("spine")},
        score="score",
        xmin="xmin",
        ymin="ymin",
        xmax="xmax",
        ymax="ymax",
    )
    path, out = folder / "boxes.csv", folder / "linked.csv"
    table.write_csv(path)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "synapflow_assets", "track-depth", "--boxes", str(path), "--out", str(out)],
        stdout=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    message = process.stdout.read().decode().strip() if process.stdout else ""
    info = {
        "stage": "track-depth CLI",
        "boxes": len(table),
        "layers": n_layers,
        "seconds": round(seconds, 2),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "exit": os.waitstatus_to_exitcode(status),
        "output": message,
    }
    STAGES.append(info)
    print(f"  track-depth CLI on {len(table)} boxes: {seconds:.1f} s, peak {info['peak_mb']} MB ({message})")
    return info


def alignment_stage(field: Field, positions: list[np.ndarray], crop: int) -> None:
    """``align_sessions`` on a ``crop`` square of sessions 0 and 1, and its error against the true motion."""
    with stage("alignment (crop)", crop=f"{field.n_layers}x{crop}x{crop}") as info:
        a = render(field, 0, positions[0], size=crop, seed=1)
        b = render(field, 1, positions[1], size=crop, seed=2)
        found = align_sessions(a, b)
        truth = true_alignment(field, 0, 1)
        grid = np.stack(np.meshgrid(np.arange(64, crop - 64, 32.0), np.arange(64, crop - 64, 32.0)), -1).reshape(-1, 2)
        info["error_px"] = round(
            float(np.linalg.norm(found.map_points(grid) - truth.map_points(grid), axis=1).mean()), 2
        )
        info["ok"] = found.ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spines", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--depth-boxes", type=int, default=200_000)
    parser.add_argument("--align-crop", type=int, default=2048)
    parser.add_argument("--skip", default="", help="comma-separated stages to skip: cli,align,evidence,store")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    total = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "cli" not in skip:
            track_depth_cli(args.depth_boxes, folder)
        field = Field(args.spines, args.layers)
        rng = np.random.default_rng(0)
        boxes, candidates, positions = [], [], []
        with stage("simulate inputs") as info:
            for k in range(args.sessions):
                if k:
                    field.turnover(0.03)
                detected, weak, where = session_boxes(field, k, rng)
                boxes.append(detected)
                candidates.append(weak)
                positions.append(where)
            info["boxes"] = sum(len(b) for b in boxes)
        print(f"field {field.size} x {field.size} px, {args.layers} layers, {len(field.spines)} spines at the end")
        with stage("depth linking", boxes=sum(len(b) for b in boxes)) as info:
            spines = depth_stage(boxes)
            info["spines"] = sum(len(s) for s in spines)
        if "align" not in skip:
            alignment_stage(field, positions[:2], args.align_crop)
        shape = (args.layers, field.size, field.size)

        if "evidence" not in skip:
            with stage("render volumes (input, not timed as tracking)"):
                for k in range(args.sessions):
                    np.save(folder / f"volume{k}.npy", render(field, k, positions[k], seed=k))

        def loader(k: int):
            return lambda: np.load(folder / f"volume{k}.npy")

        inputs = [
            SessionInput(
                f"day{k:02d}",
                spines[k],
                shape,
                f"v{k}",
                loader(k),
                candidates=candidates[k],
                voxel_size_um=VOXEL_UM,
            )
            for k in range(args.sessions)
        ]
        tracker = AnimalTracker(folder / "cache")
        with stage("true alignments into the cache"):
            tracker.cache_dir.mkdir(parents=True)
            for a, b in itertools.pairwise(inputs):
                meta = {
                    "versions": [a.volume_version or a.version, b.volume_version or b.version],
                    "params": repr(tracker.align_params),
                    "format": CACHE_FORMAT,
                    "pixel_size_um": a.pixel_size_um,
                }
                k = int(a.key[3:])
                _save_alignment(
                    tracker.cache_dir / f"align__{a.key}__{b.key}.npz", true_alignment(field, k, k + 1), meta
                )
        with stage("time linking") as info:
            tracks, report = tracker.track(inputs)
            info["tracks"] = int(tracks["track_id"].n_unique())
            info["rows"] = len(tracks)
        if "evidence" not in skip:
            with stage("redetection + evidence") as info:
                tracks, report = track_with_evidence(tracker, inputs)
                info["redetected"] = int(tracks["redetected"].sum())
                info["rows"] = len(tracks)
        if "store" not in skip:
            with stage("store write", rows=len(tracks)):
                columns = [c for c in tracks.columns if c != "session_index"] + ["session_index"]
                with FeatureStore(folder / "features.duckdb") as store:
                    store.replace_partition(
                        {"tracks": tracks.select(columns)}, "big", None, lineage_columns("bench", "1", None, None, {})
                    )
        animal_seconds = sum(
            s["seconds"]
            for s in STAGES
            if s["stage"] in ("depth linking", "time linking", "redetection + evidence", "store write")
        )
    table = pl.DataFrame([{k: v for k, v in s.items() if k in ("stage", "seconds", "peak_mb")} for s in STAGES])
    with pl.Config(tbl_rows=-1, tbl_width_chars=120, tbl_hide_dataframe_shape=True):
        print(table)
    counts = pl.concat([tracks.group_by("status").len()]).sort("status") if "tracks" in locals() else None
    if counts is not None:
        print("statuses:", dict(counts.iter_rows()))
    peak = max(s["peak_mb"] for s in STAGES if s["stage"] != "track-depth CLI")
    print(
        f"animal: {args.spines} spines x {args.sessions} sessions tracked in {animal_seconds:.1f} s "
        "(depth linking + time linking + redetection + store write) "
        f"(alignment: true transforms from the cache; align_sessions measured on a crop), "
        f"peak {peak:.0f} MB; total {time.perf_counter() - total:.0f} s"
    )
    print(
        json.dumps(
            {
                "spines": args.spines,
                "sessions": args.sessions,
                "layers": args.layers,
                "animal_seconds": round(animal_seconds, 1),
                "stages": STAGES,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
