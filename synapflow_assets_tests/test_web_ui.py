"""The Dagster web UI on our workspace as `make ui` serves it after `make demo` (`dg dev`: the web server and the
daemon with its sensors): the asset graph over GraphQL, and the pages in a real browser."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import with_empty_registry

ROOT = Path(__file__).resolve().parents[1]
ASSETS = {
    "landed_volume",
    "detection_inputs",
    "depth_settings",
    "spine_detector",
    "raw_volume",
    "detections_2d",
    "spines_3d",
    "spine_features",
    "spine_tracks",
    "spine_dynamics",
}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LANDED = {"m1": ["day00", "day04", "day08"], "m2": ["day00", "day06"]}
"""Two animals imaged on different days: an animal x session cross product would hold m1/day06, m2/day04, m2/day08."""
SCREENSHOTS = os.environ.get("SYNAPFLOW_SCREENSHOTS")
"""Folder to keep the screenshots in (docs/screenshots is refreshed this way); a temporary one otherwise."""


SENSORS = {"landing_sensor", "animal_sensor", "spine_automation"}
"""What the daemon of `make ui` evaluates at start-up; on a processed lab none of them may launch a run."""


def _processed_lab(home: Path, template_db: Path) -> dict[str, str]:
    """The landed sessions processed into the instance at `home` as `make demo` does (the registry's champion
    detector, resources as in `definitions.py`, so the daemon finds every session up to date); the run of the
    latest `spine_dynamics` materialization of each animal."""
    import dagster as dg

    from synapflow_assets.defs.feature_assets import spine_dynamics
    from synapflow_assets.defs.resources import DataLake
    from synapflow_assets.pipeline import process_landed
    from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

    for seed, (animal, names) in enumerate(LANDED.items(), start=3):
        for sim, name in zip(
            simulate_animal(SimulationParams(shape=(10, 256, 256)), n_sessions=len(names), seed=seed),
            names,
            strict=False,
        ):
            write_session(sim, home / "data" / "landing", animal, name)
    (home / "dagster.yaml").touch()
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")  # no newsletter pop-up over the screenshots
    with_empty_registry(home / "data", template_db)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        report = process_landed(instance, DataLake(root=str(home / "data")))
        assert not report.failed, report.failed
        runs = {}
        for animal in LANDED:
            only = dg.AssetRecordsFilter(asset_key=spine_dynamics.key, asset_partitions=[animal])
            runs[animal] = instance.fetch_materializations(only, limit=1).records[0].run_id
        return runs


@pytest.fixture(scope="module")
def lab(tmp_path_factory, template_db):
    """The Dagster home of the processed lab and the run of each animal's `spine_dynamics` before the UI started."""
    home = tmp_path_factory.mktemp("dagster_home")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # the registry under the lab's data root
            patch.delenv(name, raising=False)
        dynamics_runs = _processed_lab(home, template_db)
    return home, dynamics_runs


@pytest.fixture(scope="module")
def webserver(lab):
    """`make ui` on the lab: `dg dev` (web server, daemon, sensors) in its own process group."""
    home, _ = lab
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNAPFLOW_DATA": str(home / "data")}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    log = open(home / "webserver.log", "w")  # noqa: SIM115 (the server writes to it after this returns)
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dg")), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                pytest.fail(f"dg dev did not start: {(home / 'webserver.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    _stop(process)
    log.close()


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C, as `make ui` is stopped; then its whole process group (web server, daemon, code server)."""
    process.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
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
    assert graph["raw_volume"] == {"landed_volume"}
    assert graph["detections_2d"] == {"raw_volume", "spine_detector", "detection_inputs"}
    assert graph["spines_3d"] == {"detections_2d", "depth_settings"}
    assert "spines_3d" in graph["spine_tracks"] and graph["spine_dynamics"] >= {"spine_tracks", "spine_features"}


def test_the_ui_stale_badge_agrees_with_ingest(webserver):
    """`ingest` left every session up to date; the web server's own stale status says the same."""
    keys = ", ".join(f'{{path: ["{name}"]}}' for name in ("raw_volume", "detections_2d", "spines_3d", "spine_features"))
    for partition in ("m1/day04", "m2/day06"):
        query = f'{{ assetNodes(assetKeys: [{keys}]) {{ assetKey {{ path }} staleStatus(partition: "{partition}") }} }}'
        status = {n["assetKey"]["path"][-1]: n["staleStatus"] for n in _graphql(webserver, query)["assetNodes"]}
        assert status == dict.fromkeys(("raw_volume", "detections_2d", "spines_3d", "spine_features"), "FRESH")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_the_asset_page_renders_in_a_browser(webserver, tmp_path):
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=30000",
            "--dump-dom",
            f"{webserver}/assets",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    (tmp_path / "assets.html").write_text(dom)
    assert "<title" in dom and "Dagster" in dom
    assert {name for name in ASSETS if name in dom} == ASSETS


def test_only_landed_sessions_are_partitions_and_all_are_materialized(webserver):
    query = """{ assetNodes(assetKeys: [{path: ["spines_3d"]}, {path: ["spine_dynamics"]}]) {
        assetKey { path } partitionKeys partitionStats { numMaterialized numPartitions numFailed } } }"""
    nodes = {n["assetKey"]["path"][-1]: n for n in _graphql(webserver, query)["assetNodes"]}
    sessions = [f"{a}/{s}" for a, names in LANDED.items() for s in names]
    assert nodes["spines_3d"]["partitionKeys"] == sessions
    assert nodes["spines_3d"]["partitionStats"] == {"numMaterialized": 5, "numPartitions": 5, "numFailed": 0}
    assert nodes["spine_dynamics"]["partitionKeys"] == ["m1", "m2"]
    assert nodes["spine_dynamics"]["partitionStats"]["numMaterialized"] == 2


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser.new_page(viewport={"width": 1400, "height": 900})
        browser.close()


def _screenshot(page, name: str, tmp_path: Path, keep: bool = True) -> Path:
    """A screenshot that is not blank, kept in SCREENSHOTS when set and `keep`."""
    folder = Path(SCREENSHOTS) if SCREENSHOTS and keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / f"{name}.png")
    from PIL import Image

    with Image.open(folder / f"{name}.png") as picture:
        assert picture.convert("L").getextrema()[1] - picture.convert("L").getextrema()[0] > 100  # not a blank page
    return folder / f"{name}.png"


def _open_picture(page, entry: str) -> dict:
    """Open the Markdown pop-up of one metadata entry; the size of the picture it shows."""
    row = page.locator("tr", has_text=entry).first
    row.get_by_text("[Show Markdown]").click(timeout=60_000)
    picture = page.get_by_role("dialog").locator("img").first
    picture.wait_for(timeout=30_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle(), timeout=30_000)
    page.wait_for_timeout(1000)  # the dialog fades in
    return picture.evaluate("img => ({width: img.naturalWidth, height: img.naturalHeight})")


def test_lineage_overlay_and_registration_are_visible_in_a_browser(webserver, browser, tmp_path):
    page = browser
    page.goto(f"{webserver}/assets/spine_dynamics?view=lineage&lineageScope=upstream&lineageDepth=6", timeout=120_000)
    for name in ASSETS - {"spine_dynamics"}:
        page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
    _screenshot(page, "lineage", tmp_path)

    page.goto(f"{webserver}/assets/spines_3d?view=partitions&partition=m1%2Fday04", timeout=120_000)
    partitions = page.get_by_text("m1/day04", exact=True)
    partitions.first.wait_for(timeout=60_000)
    assert page.get_by_text("m2/day04", exact=True).count() == 0  # no phantom partition
    overlay = _open_picture(page, "spines_on_projection")
    assert overlay["width"] >= 256 and overlay["height"] >= 256
    _screenshot(page, "spines_3d_overlay", tmp_path)

    page.goto(f"{webserver}/assets/spine_tracks?view=partitions&partition=m1", timeout=120_000)
    registered = _open_picture(page, "last_two_sessions")
    assert registered["width"] >= 256
    _screenshot(page, "spine_tracks_registered", tmp_path)


def _on_top(locator) -> bool:
    """Whether the element is what the page shows at its centre (not under a pop-up or another element)."""
    locator.scroll_into_view_if_needed(timeout=30_000)
    return locator.evaluate(
        """element => {
            const box = element.getBoundingClientRect();
            const shown = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
            return box.width > 0 && box.height > 0 && shown !== null && element.contains(shown);
        }"""
    )


@pytest.fixture(scope="module")
def started_sensors(webserver) -> dict[str, list[dict]]:
    """The finished ticks of the daemon's sensors, once each of SENSORS has finished its first (`make ui` evaluates
    them at start-up)."""
    query = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
        sensors { name sensorState { ticks(limit: 50) { status runIds error { message } } } } } } } }"""
    deadline = time.monotonic() + 180
    while True:
        ticks = {
            sensor["name"]: [tick for tick in sensor["sensorState"]["ticks"] if tick["status"] != "STARTED"]
            for repository in _graphql(webserver, query)["repositoriesOrError"]["nodes"]
            for sensor in repository["sensors"]
        }
        if all(ticks.get(name) for name in SENSORS):
            return ticks
        if time.monotonic() > deadline:
            pytest.fail(f"the sensors of the daemon did not tick in 3 minutes: {ticks}")
        time.sleep(2)


def test_every_dynamics_partition_shows_its_plot_and_table_after_the_sensors_started(
    webserver, lab, started_sensors, browser, tmp_path
):
    """After `make demo`, `make ui`: the sensors' start-up ticks launch nothing (so no new materialization without
    a plot or table becomes the latest), and the page of every `spine_dynamics` partition shows its plot and
    per-session table."""
    _, dynamics_runs = lab
    for name in SENSORS:
        for tick in started_sensors[name]:
            assert tick["status"] in ("SKIPPED", "SUCCESS") and tick["runIds"] == [], (name, tick)
    for animal, run_id in dynamics_runs.items():
        query = f"""{{ assetNodes(assetKeys: [{{path: ["spine_dynamics"]}}]) {{
            assetMaterializations(partitions: ["{animal}"], limit: 1) {{ runId }} }} }}"""
        assert _graphql(webserver, query)["assetNodes"][0]["assetMaterializations"] == [{"runId": run_id}]

    page = browser
    for animal, sessions in LANDED.items():
        page.goto(f"{webserver}/assets/spine_dynamics?view=partitions&partition={animal}", timeout=120_000)
        table = page.locator("tr", has_text="per_session").first.locator("table").first
        table.wait_for(timeout=60_000)  # visible, in place
        cells = table.locator("tbody tr td:first-child")
        assert cells.all_inner_texts() == sessions
        assert all(_on_top(cell) for cell in cells.all()), f"the per-session table of {animal} is hidden"
        plot = _open_picture(page, "dynamics_plot")
        assert plot["width"] > 400 and plot["height"] > 150
        assert _on_top(page.get_by_role("dialog").locator("img").first), f"the plot of {animal} is hidden"
        _screenshot(
            page,
            "spine_dynamics_plot" if animal == "m1" else f"spine_dynamics_plot_{animal}",
            tmp_path,
            keep=animal == "m1",
        )
