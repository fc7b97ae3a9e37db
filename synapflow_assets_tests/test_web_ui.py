"""The Dagster web UI on our workspace: the asset graph over GraphQL, and the page in a real browser."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = {"spine_detector", "raw_volume", "detections_2d", "spines_3d", "spine_features", "spine_tracks", "spine_dynamics"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNAPFLOW_DATA": str(home / "data")}
    log = open(home / "webserver.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"dagster-webserver did not start: {(home / 'webserver.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=60).read())["data"]


def test_the_ui_serves_the_asset_lineage(webserver):
    deadline = time.monotonic() + 60
    while True:
        nodes = _graphql(webserver, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]
        if nodes or time.monotonic() > deadline:
            break
        time.sleep(1)
    graph = {n["assetKey"]["path"][-1]: {d["path"][-1] for d in n["dependencyKeys"]} for n in nodes}
    assert set(graph) == ASSETS
    assert graph["detections_2d"] == {"raw_volume", "spine_detector"}
    assert graph["spines_3d"] == {"detections_2d"}
    assert "spines_3d" in graph["spine_tracks"] and graph["spine_dynamics"] >= {"spine_tracks", "spine_features"}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_the_asset_page_renders_in_a_browser(webserver, tmp_path):
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=30000", "--dump-dom", f"{webserver}/assets"],
        capture_output=True, text=True, timeout=120).stdout
    (tmp_path / "assets.html").write_text(dom)
    assert "<title" in dom and "Dagster" in dom
    assert {name for name in ASSETS if name in dom} == ASSETS
