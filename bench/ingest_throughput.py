"""Ingest throughput: TIFF in to registered OME-Zarr out, against plain tifffile.imread.

Run: .venv/bin/python bench/ingest_throughput.py [--layers 32 --size 512 --repeats 3]
Prints a table and one JSON line.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import tifffile

from synapflow_assets.imaging.ingest import ingest_session
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = SimulationParams(shape=(args.layers, args.size, args.size))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        session = simulate_animal(params, n_sessions=1, seed=0)[0]
        simulate_s = time.perf_counter() - start
        tif = write_session(session, tmp / "landing", animal="m1", session="day00")["tif"]
        mb = tif.stat().st_size / 1e6
        read_s = best_of(args.repeats, lambda: tifffile.imread(tif))
        ingest_s = best_of(args.repeats, lambda: ingest_session(tif, tmp / "volumes" / "day00.ome.zarr"))
        zarr_mb = sum(f.stat().st_size for f in (tmp / "volumes" / "day00.ome.zarr").rglob("*") if f.is_file()) / 1e6
    result = {
        "shape": list(params.shape),
        "tiff_mb": round(mb, 1),
        "zarr_mb": round(zarr_mb, 1),
        "simulate_s": round(simulate_s, 2),
        "tifffile_imread_s": round(read_s, 3),
        "ingest_s": round(ingest_s, 3),
        "tifffile_mb_per_s": round(mb / read_s, 1),
        "ingest_mb_per_s": round(mb / ingest_s, 1),
    }
    for key, value in result.items():
        print(f"{key:>20}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
