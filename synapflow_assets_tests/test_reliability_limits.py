"""Reliability, limits: hostile SQL stops within its time or memory limit without spilling into the data folder,
and never makes an ingest fail."""

import json
import shutil
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import tifffile

from synapflow_assets.defs.instance import open_instance
from synapflow_assets.defs.resources import DataLake
from synapflow_assets.pipeline import process_landed

from .test_reliability import IMPORTED, ROOT, _moved_animal, land

HOSTILE_SQL = {
    "cross join 10^12": "SELECT count(*) FROM range(1000000) a, range(1000000) b",
    "endless recursive CTE": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r",
    "sort beyond memory": "SELECT a.range, b.range FROM range(100000) a, range(2000) b ORDER BY random()",
}
MEASURE = """
import json, sys, time
from pathlib import Path
def peak_mb():  # this process's own high-water mark (getrusage's maxrss carries the parent's over fork and exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
from synapflow_assets.store.sql_sandbox import run_read_query
start = time.monotonic()
try:
    run_read_query(Path(sys.argv[1]), sys.argv[2], timeout_seconds=float(sys.argv[3]))
    outcome = "finished"
except Exception as error:
    outcome = f"{type(error).__name__}: {error}"
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - start,
                  "max_rss_mb": peak_mb()}))
"""


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits") / "data"
    land(root, sessions=1)
    with open_instance(root) as instance:
        assert not process_landed(instance, DataLake(root=str(root)), detection=IMPORTED).failed
    return root


def _query(store, sql: str, timeout: float) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(store), sql, str(timeout)], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return _result(run.stdout)


def _result(stdout: str) -> dict:
    """The measurement printed last (after DuckDB's progress bar, if it drew one)."""
    return json.loads(stdout[stdout.rindex('{"outcome"') :])


@pytest.mark.parametrize("case", sorted(HOSTILE_SQL))
def test_reliability_a_hostile_query_stops_within_its_limits(ingested, case):
    found = _query(ingested / "features.duckdb", HOSTILE_SQL[case], 3.0)
    print(f"\n{case} | {found['outcome']} after {found['seconds']:.1f} s, peak {found['max_rss_mb']:.0f} MB")
    assert found["outcome"].startswith("QueryRejected: sql: query stopped"), found
    assert "\n" not in found["outcome"]
    assert found["seconds"] < 3.0 + 2 and found["max_rss_mb"] < 512 + 250  # the sandbox limit and the interpreter
    assert [p for p in ingested.rglob("*") if p.suffix == ".tmp" or p.name.startswith("duckdb_temp")] == []


def test_reliability_sql_command_timeout_is_one_line(ingested):
    run = subprocess.run(
        [sys.executable, "-m", "synapflow_assets", "sql", HOSTILE_SQL["cross join 10^12"], "--timeout", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SYNAPFLOW_DATA": str(ingested)},
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr[-2000:]
    assert lines[0] == "error: sql: query stopped: it ran over its time limit of 1 s"


def test_reliability_an_ingest_during_a_hostile_query_succeeds(tmp_path):
    root = tmp_path / "data"
    land(root, sessions=1)
    with open_instance(root) as instance:
        assert not process_landed(instance, DataLake(root=str(root)), detection=IMPORTED).failed
    query = subprocess.Popen(
        [sys.executable, "-c", MEASURE, str(root / "features.duckdb"), HOSTILE_SQL["endless recursive CTE"], "600"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    assert query.poll() is None
    _moved_animal(root, "m2")
    start = time.monotonic()
    with open_instance(root) as instance:
        report = process_landed(instance, DataLake(root=str(root)), detection=IMPORTED)
    out, _err = query.communicate(timeout=60)
    found = _result(out)
    print(f"\ningest during an endless query | {time.monotonic() - start:.1f} s; query: {found['outcome']}")
    assert report.failed == {}, report.failed
    assert [m.split(" ")[0] for m in report.materialized] == ["m2/day00", "m2"]
    assert "a writer (an ingest or a run) needs the store" in found["outcome"]


# --- decompression bombs: refused from the header, before any pixel is allocated


def write_bomb(path, pages: int = 400, side: int = 4096) -> None:
    """A TIFF of `pages` pages of `side` x `side` uint16 whose IFDs all point at one deflated strip of zeros:
    about 70 KB on disk, 12.5 GiB decoded."""
    strip = zlib.compress(bytes(side * side * 2), 9)
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    strip_offset = len(out)
    out += strip + (b"\x00" if len(strip) % 2 else b"")
    struct.pack_into("<I", out, 4, len(out))
    tags = [(256, 4, side), (257, 4, side), (258, 3, 16), (259, 3, 8), (262, 3, 1), (273, 4, strip_offset)]
    tags += [(277, 3, 1), (278, 4, side), (279, 4, len(strip))]
    for index in range(pages):
        ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", t, kind, 1, v) for t, kind, v in tags)
        out += ifd + struct.pack("<I", len(out) + len(ifd) + 4 if index < pages - 1 else 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))


def write_large_sparse(path, pages: int = 24, side: int = 2048) -> None:
    """A well-formed deflated TIFF of zeros: a few hundred KB on disk, `pages * side**2 * 2` bytes decoded."""
    plane = np.zeros((side, side), np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path, data=(plane for _ in range(pages)), shape=(pages, side, side), dtype=np.uint16, compression="zlib"
    )


READ = """
import json, sys, time
from synapflow_assets.imaging.readers import read_volume
def peak_mb():  # this process's own high-water mark (getrusage's maxrss carries the parent's over fork and exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
before = peak_mb()
start = time.monotonic()
try:
    read_volume(sys.argv[1], max_decoded_mb=int(sys.argv[2]))
    outcome = "read"
except Exception as error:
    outcome = f"{type(error).__name__}: {error}"
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - start,
                  "grown_mb": peak_mb() - before,
                  "max_rss_mb": peak_mb()}))
"""


@pytest.mark.parametrize(
    ("case", "write", "limit", "phrase"),
    [
        ("shared strips, 70 KB -> 12.5 GiB", write_bomb, 4096, "share their pixel data"),
        ("sparse, 24 x 2048^2 uint16 over a 64 MB limit", write_large_sparse, 64, "decoded size 192 MB exceeds"),
    ],
)
def test_reliability_a_decompression_bomb_is_refused_from_its_header(tmp_path, case, write, limit, phrase):
    path = tmp_path / "day00.tif"
    write(path)
    run = subprocess.run([sys.executable, "-c", READ, str(path), str(limit)], cwd=ROOT, capture_output=True, text=True)
    found = _result(run.stdout)
    print(
        f"\n{case} ({path.stat().st_size // 1024} KB) | {found['outcome'].split(': ', 2)[-1]}; "
        f"{found['seconds']:.2f} s, +{found['grown_mb']:.0f} MB (peak {found['max_rss_mb']:.0f} MB)"
    )
    assert found["outcome"].startswith("InputError") and phrase in found["outcome"], found
    assert found["seconds"] < 2 and found["grown_mb"] < 200


def test_reliability_a_bomb_fails_only_its_partition(tmp_path):
    root = tmp_path / "data"
    land(root, "good", sessions=1)
    write_bomb(root / "landing" / "bomb" / "day00.tif")
    write_large_sparse(root / "landing" / "big" / "day00.tif")
    (root / "landing" / "big" / "synapflow.yaml").write_text("imaging:\n  max_decoded_mb: 64\n")
    with open_instance(root) as instance:
        report = process_landed(instance, DataLake(root=str(root)), detection=IMPORTED)
    assert "share their pixel data" in report.failed["bomb/day00"]
    assert "decoded size 192 MB exceeds the limit of 64 MB" in report.failed["big/day00"]
    assert all("\n" not in line for line in report.failed.values())
    assert [m.split(" ")[0] for m in report.materialized] == ["good/day00", "good"]


# --- a damaged store: one line saying how to rebuild it, from `sql` and from `ingest`


def _damage_blocks(path) -> None:
    data = bytearray(path.read_bytes())
    for start in range(len(data) // 2 // 4096 * 4096 + 200, len(data), 4096):
        data[start : start + 64] = b"\xab" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["data blocks", "truncated"])
def test_reliability_a_damaged_store_is_one_line(tmp_path, ingested, damage):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(ingested, root)
    store = root / "features.duckdb"
    if damage == "truncated":
        store.write_bytes(store.read_bytes()[: store.stat().st_size // 2])
    else:
        _damage_blocks(store)
    env = {"PATH": "/usr/bin:/bin", "SYNAPFLOW_DATA": str(root), "SYNAPFLOW_SETTLE_SECONDS": "0"}
    outcomes = []
    for command in (["sql", "SELECT * FROM spine_features"], ["ingest", "--source", "imported"]):
        (root / "landing" / "m1" / "day00.tif").touch()  # ingest reads the store
        run = subprocess.run(
            [sys.executable, "-m", "synapflow_assets", *command], cwd=ROOT, env=env, capture_output=True, text=True
        )
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        outcomes.append(f"{command[0]} exit {run.returncode}: {lines[-1] if lines else ''}")
        assert run.returncode == 2 and len(lines) == 1, run.stderr[-2000:]
        assert f"{store}: not a readable feature store" in lines[0] and "move it aside" in lines[0]
    print(f"\nstore {damage} | " + " / ".join(outcomes))


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux prlimit")
def test_reliability_running_out_of_memory_is_one_line_and_fails_only_its_partition(tmp_path):
    """Under a 3 GB address-space limit, a session that decodes to 1.5 GiB (a small zlib file, under the decoded
    size limit) fails in one line naming its file; the command ends with exit 1 and no traceback."""
    landing = tmp_path / "data" / "landing" / "m1"
    landing.mkdir(parents=True)
    volume = np.zeros((48, 4096, 4096), np.uint16)
    volume[:, ::64, ::64] = 100
    tifffile.imwrite(landing / "day00.tif", volume, compression="zlib", imagej=True, resolution=(10, 10))
    del volume
    (landing / "day00.done").write_text("")
    command = [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(tmp_path / "data")]
    run = subprocess.run(
        ["prlimit", "--as=3000000000", *command, "--source", "baseline", "--no-wait"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    failed = [line.strip() for line in (run.stdout + run.stderr).splitlines() if "FAILED m1/day00" in line]
    print(f"\nout of memory | exit {run.returncode}: {failed}")
    assert run.returncode == 1 and "Traceback" not in run.stdout + run.stderr
    assert len(failed) == 1 and "day00.tif" in failed[0] and "allocate" in failed[0]
