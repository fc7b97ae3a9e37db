"""Tests of the chronic two-photon simulator (synapflow_assets.synthetic)."""

import json
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
import tifffile
from polars.testing import assert_frame_equal

from synapflow_assets.synthetic import SimulationParams, read_truth, simulate_animal, simulate_landing, write_session
from synapflow_assets.synthetic.truth import in_view

SMALL = SimulationParams(shape=(16, 256, 256))
NO_RENDER = range(1000)


@pytest.fixture(scope="module")
def sessions():
    return simulate_animal(SMALL, n_sessions=3, seed=1)


def _ids(df, *statuses):
    return set(df.filter(pl.col("status").is_in(statuses))["spine_id"].to_list())


def test_volume_basics(sessions):
    for s in sessions:
        assert s.volume.dtype == np.uint16 and s.volume.shape == SMALL.shape
        assert s.layer_shifts.shape == (16, 2)
        np.testing.assert_array_equal(s.layer_shifts[8], [0.0, 0.0])
        assert s.boxes.schema["layer"] == pl.Int32 and s.boxes.schema["spine_id"] == pl.Int64
    assert sessions[0].drift_px == (0.0, 0.0, 0.0) and sessions[0].brightness == 1.0


def test_spine_heads_are_bright_in_the_image(sessions):
    bright, total = 0, 0
    for s in sessions:
        vis = s.spines.filter(pl.col("status").is_in(["present", "new"]))
        for z, y, x in vis.select("z", "y", "x").rows():
            k = int(round(z))
            layer = s.volume[k].astype(float)
            dy, dx = s.layer_shifts[k]  # the image layer is jittered, the truth is not
            yi, xi = int(round(y + dy)), int(round(x + dx))
            win = layer[max(yi - 1, 0) : yi + 2, max(xi - 1, 0) : xi + 2].mean()
            med = np.median(layer)
            sigma = 1.4826 * np.median(np.abs(layer - med))
            bright += win > med + 5 * sigma
            total += 1
    print(f"bright heads: {bright}/{total} = {bright / total:.3f}")
    assert total > 50
    assert bright / total >= 0.95


def test_boxes_inside_and_consecutive(sessions):
    for s in sessions:
        ny, nx = SMALL.shape[1:]
        b = s.boxes
        assert (b["xmin"] >= 0).all() and (b["ymin"] >= 0).all()
        assert (b["xmax"] <= nx - 1).all() and (b["ymax"] <= ny - 1).all()
        assert ((b["xmax"] - b["xmin"]) > 1).all() and ((b["ymax"] - b["ymin"]) > 1).all()
        vis = s.spines.filter(pl.col("status").is_in(["present", "new"]))
        assert set(b["spine_id"].to_list()) == set(vis["spine_id"].to_list())
        z = dict(zip(vis["spine_id"].to_list(), vis["z"].to_list(), strict=False))
        for (sid,), g in b.group_by("spine_id"):
            layers = np.sort(g["layer"].to_numpy())
            assert np.all(np.diff(layers) == 1) and 2 <= len(layers) <= 5
            assert layers[0] <= round(z[sid]) <= layers[-1]
            assert g["type"].n_unique() == 1


def test_ids_persist_and_follow_the_transform(sessions):
    s0, s1 = sessions[0].spines, sessions[1].spines
    both = s0.join(s1, on="spine_id", suffix="_1").filter(
        pl.col("status").is_in(["present", "out_of_view"]) & pl.col("status_1").is_in(["present", "out_of_view"])
    )
    assert both.height > 20
    assert (both["type"] == both["type_1"]).all() and (both["dendrite_id"] == both["dendrite_id_1"]).all()
    c = (np.array(SMALL.shape[1:]) - 1) / 2
    a = np.deg2rad(sessions[1].rotation_deg)
    dz, dy, dx = sessions[1].drift_px
    y0, x0 = both["y"].to_numpy() - c[0], both["x"].to_numpy() - c[1]
    ey = c[0] + np.cos(a) * y0 - np.sin(a) * x0 + dy
    ex = c[1] + np.sin(a) * y0 + np.cos(a) * x0 + dx
    err = np.hypot(both["y_1"].to_numpy() - ey, both["x_1"].to_numpy() - ex)
    print(f"max xy error after drift+rotation: {err.max():.2f} px")
    assert err.max() < 3.0 and err.mean() > 0.01  # deformation moves points a little, not much
    # z moves by the drift only (up to the head growing along its slightly tilted axis)
    np.testing.assert_allclose(both["z_1"].to_numpy(), both["z"].to_numpy() + dz, atol=0.2)


def test_drift_is_as_configured():
    p = replace(
        SMALL,
        deformation_px=0.0,
        max_rotation_deg=0.0,
        max_drift_px=12.0,
        max_drift_layers=1.5,
        layer_jitter_px=0.0,
        size_walk_sigma=0.0,
    )  # a growing head moves its centre a little
    sims = simulate_animal(p, n_sessions=4, seed=2)
    for s in sims[1:]:
        assert abs(s.drift_px[0]) <= 1.5 and max(abs(s.drift_px[1]), abs(s.drift_px[2])) <= 12.0
        j = (
            sims[0]
            .spines.join(s.spines, on="spine_id", suffix="_1")
            .filter((pl.col("status") != "eliminated") & (pl.col("status_1") != "eliminated"))
        )
        moved = j.select(pl.col("z_1") - pl.col("z"), pl.col("y_1") - pl.col("y"), pl.col("x_1") - pl.col("x"))
        np.testing.assert_allclose(moved.to_numpy(), np.tile(s.drift_px, (j.height, 1)), atol=1e-9)
        # the image moved too: phase correlation of the max projections finds the x/y drift
        f = np.fft.fft2(s.volume.max(0).astype(float)) * np.conj(np.fft.fft2(sims[0].volume.max(0).astype(float)))
        corr = np.fft.ifft2(f / np.maximum(np.abs(f), 1e-9)).real
        peak = np.array(np.unravel_index(np.argmax(corr), corr.shape), float)
        peak = (peak + 128) % 256 - 128
        assert np.all(np.abs(peak - s.drift_px[1:]) <= 1.0), (peak, s.drift_px)


def test_turnover_rates_and_status_consistency():
    p = SimulationParams(elimination_prob=0.1, formation_rate=0.1)
    sims = simulate_animal(p, n_sessions=30, seed=3, skip_render=NO_RENDER)
    assert all(s.volume is None for s in sims)
    seen, gone, reference, n_elim, n_formed, n_listed, entered = set(), set(), 0, 0, 0, 0, 0
    prev, prev_in_view = None, set()
    for s in sims:
        ids = set(s.spines["spine_id"].to_list())
        assert s.spines["spine_id"].is_unique().all()
        assert not ids & gone, "an eliminated id reappeared"
        fresh = ids - seen
        if prev is not None:
            prev_alive = prev - gone
            assert _ids(s.spines, "eliminated") <= prev_alive
            assert _ids(s.spines, "present") <= prev_alive | fresh
            assert _ids(s.spines, "new") <= fresh and fresh <= _ids(s.spines, "new", "present", "out_of_view")
            entered += len(fresh & _ids(s.spines, "present"))
            assert not fresh or min(fresh) > max(seen)
            # interval rates as a lab measures them: among the spines in view before whose place is in view now
            reference += len(prev_in_view & _ids(s.spines, "present", "eliminated"))
            n_elim += len(prev_in_view & _ids(s.spines, "eliminated"))
            n_listed += len(prev_alive)
            n_formed += len(fresh)
        else:
            assert not _ids(s.spines, "new", "eliminated")
        seen |= ids
        gone |= _ids(s.spines, "eliminated")
        prev, prev_in_view = ids, _ids(s.spines, "present", "new")
    print(f"elimination {n_elim / reference:.3f} over {reference}, formation {n_formed / n_listed:.3f} over {n_listed}")
    assert reference > 1000
    assert 0 < entered < n_formed / 4, "formed where the previous image did not look: present, not new"
    assert abs(n_elim / reference - 0.1) < 0.02
    assert abs(n_formed / n_listed - 0.1) < 0.02


def test_a_spine_lost_out_of_view_is_eliminated_where_its_place_is_seen():
    """No image sees a loss outside it: such a spine is ``out_of_view`` until a session's image holds its place."""
    p = SimulationParams(elimination_prob=0.3, formation_rate=0.1)
    sims = simulate_animal(p, n_sessions=12, seed=5, skip_render=NO_RENDER)
    statuses = pl.concat(
        s.spines.select("spine_id", "status", "z", "y", "x").with_columns(session=s.index) for s in sims
    )
    eliminated = statuses.filter(pl.col("status") == "eliminated")
    inside = in_view(eliminated.select("z", "y", "x").to_numpy(), p.shape)
    assert inside.all() and len(eliminated) > 20
    # some losses were out of view when they happened and are called where a later image holds their place
    history = statuses.filter(pl.col("spine_id").is_in(eliminated["spine_id"].implode())).sort("spine_id", "session")
    late = history.group_by("spine_id").agg(
        called=pl.col("status").last() == "eliminated",
        before=pl.col("status").slice(0, pl.len() - 1).tail(1).first(),
    )
    assert late["called"].all()
    assert (late["before"] == "out_of_view").sum() >= 1


def test_head_size_random_walk():
    sims = simulate_animal(replace(SMALL, size_walk_sigma=0.1), n_sessions=2, seed=4, skip_render=NO_RENDER)
    j = sims[0].spines.join(sims[1].spines.filter(pl.col("status") != "eliminated"), on="spine_id", suffix="_1")
    ratio = np.log(j["head_radius_um_1"].to_numpy() / j["head_radius_um"].to_numpy())
    assert 0.05 < ratio.std() < 0.15
    order = np.argsort(sims[0].spines["head_radius_um"].to_numpy())
    assert (
        np.corrcoef(sims[0].spines["head_radius_um"].to_numpy()[order], sims[0].spines["size"].to_numpy()[order])[0, 1]
        > 0.8
    )


def test_out_of_view_spines_have_no_boxes():
    p = replace(SMALL, max_drift_px=120.0)
    sims = simulate_animal(p, n_sessions=3, seed=5, skip_render=NO_RENDER)
    oov = pl.concat([s.spines.filter(pl.col("status") == "out_of_view") for s in sims[1:]])
    assert oov.height > 5
    for s in sims:
        out = s.spines.filter(pl.col("status") == "out_of_view")
        assert not set(out["spine_id"].to_list()) & set(s.boxes["spine_id"].to_list())
        zyx = out.select("z", "y", "x").to_numpy()
        assert np.all(np.any((zyx < 0) | (zyx > np.array(SMALL.shape) - 1), axis=1))


def test_determinism(sessions):
    again = simulate_animal(SMALL, n_sessions=2, seed=1, skip_render={0})
    assert again[1].volume.tobytes() == sessions[1].volume.tobytes()
    assert_frame_equal(again[0].boxes, sessions[0].boxes)
    other = simulate_animal(SMALL, n_sessions=1, seed=2)
    assert other[0].volume.tobytes() != sessions[0].volume.tobytes()


def test_write_session_and_read_back(sessions, tmp_path):
    when = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    paths = write_session(sessions[1], tmp_path, animal="mouse07", session="day04", acquired_at=when)
    assert paths["tif"] == tmp_path / "mouse07" / "day04.tif"
    with tifffile.TiffFile(paths["tif"]) as tif:
        data = tif.asarray()
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == 1.0 and tif.imagej_metadata["unit"] == "um"
        num, den = tif.pages[0].tags["XResolution"].value
        assert num / den == pytest.approx(1 / 0.12, rel=1e-4)
    assert data.dtype == np.uint16 and data.shape == SMALL.shape
    np.testing.assert_array_equal(data, sessions[1].volume)
    side = json.loads(paths["sidecar"].read_text())
    assert side == {"voxel_size_um": [1.0, 0.12, 0.12], "acquired_at": "2026-01-05T10:00:00+00:00", "simulated": True}
    boxes, spines = read_truth(paths["tif"])
    assert_frame_equal(boxes, sessions[1].boxes, check_exact=False, rel_tol=1e-12)
    assert_frame_equal(spines, sessions[1].spines, check_exact=False, rel_tol=1e-12)
    assert not [p for p in (tmp_path / "mouse07").iterdir() if p.name.startswith(".")]


def test_simulate_landing_is_deterministic_and_idempotent(tmp_path):
    tifs = simulate_landing(tmp_path / "a", animals=2, sessions=2, seed=0, params=SMALL)
    assert [t.relative_to(tmp_path / "a").as_posix() for t in tifs] == [
        "mouse01/day00.tif",
        "mouse01/day04.tif",
        "mouse02/day00.tif",
        "mouse02/day04.tif",
    ]
    assert all(t.exists() for t in tifs)
    assert json.loads(tifs[3].with_suffix(".json").read_text())["acquired_at"].startswith("2026-01-05T10:10")
    mtimes = [t.stat().st_mtime_ns for t in tifs]
    tifs[1].unlink()
    assert simulate_landing(tmp_path / "a", animals=2, sessions=2, seed=0, params=SMALL) == tifs
    assert [t.stat().st_mtime_ns for i, t in enumerate(tifs) if i != 1] == mtimes[:1] + mtimes[2:]
    one = simulate_landing(tmp_path / "b", animals=1, sessions=2, seed=0, params=SMALL)
    for t in one:  # adding animals does not change earlier ones; a re-rendered session is identical
        np.testing.assert_array_equal(
            tifffile.imread(t), tifffile.imread(tmp_path / "a" / t.relative_to(tmp_path / "b"))
        )
    assert tifffile.imread(tifs[0]).tobytes() != tifffile.imread(tifs[2]).tobytes()
    assert not [p for p in (tmp_path / "a").rglob(".*")]
