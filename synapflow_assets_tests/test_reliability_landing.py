"""Reliability, landing folder: symbolic links (loops, dangling, escaping), FIFOs and settling files are each
one line; the other sessions are ingested."""

import os
import shutil
import subprocess
import sys
import threading
import time

from synapflow_assets.imaging.landing import scan_landing

from .test_reliability import ROOT, _moved_animal, land

LINKS = {
    "loop animal": lambda landing, outside: os.symlink("loop", landing / "loop"),
    "loop session": lambda landing, outside: os.symlink("day09.tif", landing / "good" / "day09.tif"),
    "dangling session": lambda landing, outside: os.symlink(landing / "gone.tif", landing / "good" / "day10.tif"),
    "outside file": lambda landing, outside: os.symlink("/etc/passwd", landing / "good" / "day11.tif"),
    "outside animal": lambda landing, outside: os.symlink(outside, landing / "elsewhere"),
    "outside png layer": lambda landing, outside: (
        (landing / "good" / "day12").mkdir(),
        os.symlink(outside / "day00.tif", landing / "good" / "day12" / "s_layer00.png"),
    ),
    "fifo": lambda landing, outside: os.mkfifo(landing / "good" / "day13.tif"),
}
PHRASES = {
    "loop animal": "loop: symbolic link loop",
    "loop session": "day09.tif: symbolic link loop",
    "dangling session": "day10.tif: dangling symbolic link",
    "outside file": "day11.tif: symbolic link to /etc/passwd, outside the landing folder",
    "outside animal": "elsewhere: symbolic link to",
    "outside png layer": "s_layer00.png: symbolic link to",
    "fifo": "day13.tif: a FIFO",
}


def test_reliability_landing_links_are_refused_in_one_line(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "outside"
    land(root, "good", sessions=1)
    outside.mkdir()
    shutil.copy(root / "landing" / "good" / "day00.tif", outside / "day00.tif")
    inside_link = _moved_animal(root, "linked").parent / "alias"
    os.symlink("linked", inside_link)  # a link inside the landing folder is fine
    for make in LINKS.values():
        make(root / "landing", outside)
    sessions, problems = scan_landing(root / "landing")
    print("\ncase | outcome")
    for case, phrase in PHRASES.items():
        line = next((p for p in problems if phrase in p), None)
        print(f"{case} | {line}")
        assert line is not None and "\n" not in line, (case, problems)
    assert len(problems) == len(LINKS)
    assert sorted((s.animal, s.session) for s in sessions) == [
        ("alias", "day00"),
        ("good", "day00"),
        ("linked", "day00"),
    ]

    run = subprocess.run(
        [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(root), "--source", "imported"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "root:" not in run.stdout and "passwd" not in run.stdout  # the target's bytes are never shown
    skipped = [line for line in run.stderr.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == len(LINKS), run.stderr
    assert "ran good/day00" in run.stdout and "ran linked/day00" in run.stdout


def test_reliability_a_session_removed_from_landing_is_reported(tmp_path):
    root = tmp_path / "data"
    land(root, sessions=2)
    command = [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(root), "--source", "imported"]
    assert subprocess.run(command, cwd=ROOT, capture_output=True, timeout=240).returncode == 0
    for path in (root / "landing" / "m1").glob("day04*"):
        path.unlink()
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    removed = [line.strip() for line in run.stdout.splitlines() if "REMOVED" in line]
    print(f"\nsession removed from landing | exit {run.returncode}: {removed}")
    assert run.returncode == 0 and len(removed) == 1 and removed[0].startswith("REMOVED m1/day04: no longer in")
    assert "kept" in removed[0]
    # the lab's other choice: drop it, and recompute the animal without it
    from synapflow_assets.store.feature_store import query

    dropped = subprocess.run([*command, "--drop-removed"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    lines = [line.strip() for line in dropped.stdout.splitlines() if "REMOVED" in line]
    assert dropped.returncode == 0 and len(lines) == 1 and "dropped" in lines[0], dropped.stdout + dropped.stderr
    store = root / "features.duckdb"
    assert query(store, "SELECT count(*) AS n FROM spine_features WHERE session = 'day04'")["n"][0] == 0
    assert query(store, "SELECT session FROM dynamics WHERE animal = 'm1'")["session"].to_list() == ["day00"]
    assert not (root / "volumes" / "m1" / "day04.ome.zarr").exists()
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0 and "REMOVED" not in again.stdout, again.stdout


def test_reliability_ingest_waits_for_files_still_being_copied(tmp_path):
    root = tmp_path / "data"
    land(root, sessions=1)
    (root / "landing" / "m1" / "day00.done").unlink()
    env = {**os.environ, "SYNAPFLOW_SETTLE_SECONDS": "2"}
    command = [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(root), "--source", "imported"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    # the copy goes on until the command says it waits for it (its start-up takes seconds on a loaded machine),
    # and 3 s more
    while time.monotonic() < deadline and not any("waiting for 1 session" in line for line in lines):
        (root / "landing" / "m1" / "day00.tif").touch()
        time.sleep(0.5)
    for _ in range(6):
        (root / "landing" / "m1" / "day00.tif").touch()
        time.sleep(0.5)
    process.wait(timeout=240)
    reader.join(timeout=30)
    run = subprocess.CompletedProcess(command, process.returncode, "".join(lines), "")
    waited = [line.strip() for line in run.stdout.splitlines() if "waiting for 1 session" in line]
    print(f"\ningest right after a copy | exit {run.returncode}; {waited[:1]}")
    assert run.returncode == 0 and waited and "m1/day00" in waited[0]
    assert "ran m1/day00" in run.stdout and "WAITING" not in run.stdout
