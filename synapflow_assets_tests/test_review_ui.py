"""`review-ui`: the least confident events in the browser, decided by keyboard, stored as corrections at once,
undone, and the dynamics recomputed through Dagster; the command serves until Ctrl-C and refuses bad input."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from synapflow_assets.__main__ import main
from synapflow_assets.cli.review_ui import recompute
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.pipeline import process_landed
from synapflow_assets.store.feature_store import query
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session
from synapflow_assets.tools.review_ui import load_session, make_app, make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PARAMS = SimulationParams(shape=(12, 256, 256), elimination_prob=0.35, formation_rate=0.35)
"""Four sessions of these hold about 70 events: enough for a review of 50."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lab")
    for sim in simulate_animal(PARAMS, n_sessions=4, seed=5):
        write_session(sim, root / "landing", "m1", f"day{4 * sim.index:02d}")
    with dg.instance_for_test() as instance:
        report = process_landed(instance, DataLake(root=str(root)), detection=DetectionSettings(source="imported"))
    assert not report.failed, report.failed
    return root


def tracks(root: Path) -> pl.DataFrame:
    return query(root / "features.duckdb", "SELECT session, track_id, status, corrected_by FROM tracks")


def corrections(root: Path) -> pl.DataFrame:
    return query(root / "features.duckdb", "SELECT * FROM corrections ORDER BY corrected_at")


@contextlib.contextmanager
def serving(session, recompute_dynamics):
    server, sock, url = make_server(make_app(session, recompute_dynamics), 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_review_ui_refuses_an_unknown_animal_or_a_missing_store_in_one_line(lab, tmp_path, capsys):
    assert main(["review-ui", "--animal", "nobody", "--data", str(lab)]) == 2
    assert capsys.readouterr().err.strip().endswith("no tracks of animal 'nobody' in the feature store")
    assert main(["review-ui", "--animal", "m1", "--data", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no feature store (run ingest first, or pass --data)" in error
    assert main(["review-ui", "--animal", "m1", "--limit", "0", "--data", str(lab)]) == 2


def test_review_ui_command_serves_until_ctrl_c_and_then_recomputes_the_dynamics(lab):
    before = corrections(lab)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synapflow_assets",
            "review-ui",
            "--animal",
            "m1",
            "--limit",
            "3",
            "--by",
            "cli-tester",
            "--data",
            str(lab),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert "3 events of m1 to review at http://127.0.0.1:" in first, process.stderr.read()
        url = first.split(" at ")[1].split()[0]
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "<title>Review m1</title>" in page
        listed = json.loads(urllib.request.urlopen(f"{url}events", timeout=30).read())
        assert len(listed["events"]) == 3 and listed["corrected_by"] == "cli-tester"
        event = listed["events"][0]
        request = urllib.request.Request(
            f"{url}decisions",
            data=json.dumps({"position": 0, "status": "eliminated"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert json.loads(urllib.request.urlopen(request, timeout=30).read())["stored"] == 1
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "recomputing spine_dynamics of m1 with the 1 stored decisions" in out and "recomputed" in out
    added = corrections(lab).join(before, on=list(before.columns), how="anti", nulls_equal=True)
    assert added.select("session", "track_id", "status", "corrected_by").rows() == [
        (event["session"], event["track_id"], "eliminated", "cli-tester")
    ]
    row = tracks(lab).filter((pl.col("session") == event["session"]) & (pl.col("track_id") == event["track_id"]))
    assert row.select("status", "corrected_by").rows() == [("eliminated", "cli-tester")]


@pytest.fixture
def page():
    playwright = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser.new_page(viewport={"width": 1200, "height": 900})
        browser.close()


SHOWN = """n => {
    const picture = document.getElementById('picture');
    return document.getElementById('progress').dataset.position === String(n)
        && (n >= 50 || (picture.complete && picture.naturalWidth > 0));
}"""
"""The page shows event ``n`` (its progress and its picture), or that all are reviewed."""
LATENCY = """() => {
    window.latencies = [];
    document.addEventListener('keydown', () => { window.keyAt = performance.now(); }, true);
    new MutationObserver(() => window.latencies.push(performance.now() - window.keyAt))
        .observe(document.getElementById('progress'), {attributes: true, attributeFilter: ['data-position']});
}"""
"""Milliseconds from each keydown to the page showing what follows (the observer runs once render is done)."""


def test_keyboard_review_of_50_events_in_chromium_stores_undoes_and_recomputes(lab, page):
    tracks_before, corrections_before = tracks(lab), corrections(lab)
    session = load_session(lab, "m1", limit=50, corrected_by="tester")
    events = session.events
    assert len(events) == 50 and events["confidence"].is_sorted()

    def press(key: str, position: int) -> float:
        start = time.perf_counter()
        page.keyboard.press(key)
        page.wait_for_function(SHOWN, arg=position, timeout=30_000)
        return time.perf_counter() - start

    def added() -> pl.DataFrame:
        return corrections(lab).join(
            corrections_before, on=list(corrections_before.columns), how="anti", nulls_equal=True
        )

    with serving(session, lambda animal: recompute(lab, animal)) as url:
        page.goto(url)
        page.wait_for_function(SHOWN, arg=0, timeout=30_000)
        size = page.eval_on_selector("#picture", "img => [img.naturalWidth, img.naturalHeight]")
        assert size[0] > size[1] > 20  # both sessions side by side
        info = page.inner_text("#info")
        assert f"{events['confidence'][0]:.3f}" in info and events["reason"][0] in info
        assert page.inner_text("#progress") == "0 of 50"
        if os.environ.get("SYNAPFLOW_SCREENSHOTS"):  # docs/screenshots is refreshed this way (see test_web_ui.py)
            page.screenshot(path=Path(os.environ["SYNAPFLOW_SCREENSHOTS"]) / "review_ui.png")

        for position, key in enumerate(["p", "n", "e", "s", "p", "e"], start=1):
            press(key, position)
        assert len(added()) == 5
        press("Backspace", 5)  # takes back the last decision: its row leaves the table
        assert len(added()) == 4 and page.inner_text("#progress") == "5 of 50"
        press("o", 6)
        decided = {0: "present", 1: "new", 2: "eliminated", 4: "present", 5: "out_of_view"}
        expected = sorted(
            (events["session"][i], events["track_id"][i], events["status"][i], status) for i, status in decided.items()
        )
        stored = added()
        assert sorted(stored.select("session", "track_id", "computed_status", "status").rows()) == expected
        assert set(stored["corrected_by"]) == {"tester"} and stored["corrected_at"].is_not_null().all()

        page.keyboard.press("f")
        page.wait_for_function(
            "() => document.getElementById('message').textContent.includes('recomputed')", timeout=300_000
        )
        after = tracks(lab)
        changed = after.join(tracks_before, on=list(tracks_before.columns), how="anti", nulls_equal=True)
        assert sorted(changed.select("session", "track_id", "status").rows()) == sorted(
            (s, t, status) for s, t, _, status in expected
        )
        assert set(changed["corrected_by"]) == {"tester"} and len(after) == len(tracks_before)
        assert "dynamics not recomputed" not in page.inner_text("#stored")

        page.evaluate(LATENCY)
        timings = [press("p" if position % 2 else "e", position) for position in range(7, 51)]
        assert "All 50 events reviewed" in page.inner_text("#done") and len(added()) == 49
        timings += [press("u" if position % 2 else "Backspace", position) for position in range(49, 5, -1)]
        assert sorted(added().select("session", "track_id", "computed_status", "status").rows()) == expected
        assert page.inner_text("#progress") == "6 of 50"
        in_page = sorted(page.evaluate("window.latencies"))

    outside = sorted(1000 * t for t in timings)
    assert len(in_page) == len(outside) == 88
    for name, ms in (("in the page", in_page), ("through Playwright", outside)):
        print(
            f"\nreview-ui, 50 events, {len(ms)} key presses (decide and undo), keydown to the next event shown with "
            f"the decision stored, {name}: median {ms[len(ms) // 2]:.0f} ms, 90th percentile "
            f"{ms[int(0.9 * len(ms))]:.0f} ms, max {ms[-1]:.0f} ms"
        )
    assert in_page[len(in_page) // 2] < 1000  # generous: the target is < 200 ms, on a machine not shared
