import duckdb
import polars as pl

from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

IMPORTED = DetectionSettings(source="imported")


def test_a_session_without_detections_flows_to_tracks_and_dynamics(tmp_path, instance):
    for sim in simulate_animal(SimulationParams(shape=(12, 192, 192)), n_sessions=2, seed=5):
        write_session(sim, tmp_path / "landing", "m1", f"day{4 * sim.index:02d}")
    csv = tmp_path / "landing" / "m1" / "day04.detections.csv"
    pl.read_csv(csv).head(0).write_csv(csv)
    lake = DataLake(root=str(tmp_path))

    report = process_landed(instance, lake, detection=IMPORTED)

    assert not report.failed, report.failed
    assert "m1/day04: detections_2d check detections_found: no spine detected in this session" in report.warnings
    assert not any(line.startswith("m1/day00: detections_2d") for line in report.warnings)
    assert pl.read_parquet(lake.spines_path("m1", "day04")).is_empty()
    first = pl.read_parquet(lake.spines_path("m1", "day00"))
    assert len(first) > 10
    with duckdb.connect(str(lake.store_path), read_only=True) as con:
        counts = dict(con.execute("SELECT session, count(*) FROM spine_features GROUP BY session").fetchall())
        eliminated = con.execute(
            "SELECT elimination_rate FROM dynamics WHERE animal = 'm1' AND session = 'day04'"
        ).fetchone()[0]
    assert counts == {"day00": len(first)}
    assert eliminated == 1.0
