"""Writing simulated sessions to disk the way a microscope would land them."""

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import tifffile

from .chronic import SimulatedSession, project_session, simulate_animal
from .detector_noise import simulated_detections
from .params import SimulationParams
from .truth import BOX_SCHEMA, SPINE_SCHEMA

DAYS_BETWEEN_SESSIONS = 4
FIRST_DAY = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def atomic_write(path: Path, write) -> Path:
    """Call ``write(tmp)`` on a hidden temporary name beside ``path``, then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_session(
    sim: SimulatedSession,
    out_dir,
    animal: str = "mouse01",
    session: str | None = None,
    acquired_at: datetime | None = None,
) -> dict[str, Path]:
    """Write one session as
    ``out_dir/<animal>/<session>.{json,boxes.csv,spines.csv,transform.json,detections.csv,tif}``.

    ``detections.csv`` is simulated detector output (ground truth with jitter,
    misses and false positives, in the reference CSV layout): what a lab would
    import from an existing detector.

    Every file is written under a hidden temporary name and renamed, the
    ImageJ ``.tif`` and then the ``.done`` marker last, so a watcher never sees a partial file.

    Parameters
    ----------
    sim : SimulatedSession
    out_dir : path
    animal : str
    session : str, optional
        Session name, e.g. ``"day00"``; defaults to ``day<4 x index>``.
    acquired_at : datetime, optional
        Defaults to ``FIRST_DAY + 4 days x index``.

    Returns
    -------
    dict
        ``{"tif", "sidecar", "boxes", "spines", "transform", "detections", "done"}`` -> Path; the
        ``.done`` marker, written last, tells the landing sensor the session is complete (no wait for
        two unchanged ticks).
    """
    name = session or f"day{DAYS_BETWEEN_SESSIONS * sim.index:02d}"
    if sim.volume is None:
        raise ValueError(f"session {sim.index} was simulated without its volume; nothing to write")
    volume = sim.volume
    acquired_at = acquired_at or FIRST_DAY + timedelta(days=DAYS_BETWEEN_SESSIONS * sim.index)
    folder = Path(out_dir) / animal
    folder.mkdir(parents=True, exist_ok=True)
    vz, vy, vx = sim.voxel_size_um
    sidecar = {"voxel_size_um": [vz, vy, vx], "acquired_at": acquired_at.isoformat(), "simulated": True}
    transform = {
        "drift_px": list(sim.drift_px),
        "rotation_deg": sim.rotation_deg,
        "brightness": sim.brightness,
        "layer_shifts": np.asarray(sim.layer_shifts).tolist(),
    }
    paths = {
        "sidecar": atomic_write(folder / f"{name}.json", lambda p: p.write_text(json.dumps(sidecar, indent=1))),
        "transform": atomic_write(folder / f"{name}.transform.json", lambda p: p.write_text(json.dumps(transform))),
        "boxes": atomic_write(folder / f"{name}.boxes.csv", lambda p: sim.boxes.write_csv(p)),
        "spines": atomic_write(folder / f"{name}.spines.csv", lambda p: sim.spines.write_csv(p)),
        "detections": atomic_write(
            folder / f"{name}.detections.csv",
            lambda p: simulated_detections(sim.boxes, name, volume.shape[1:], seed=sim.index).write_csv(p),
        ),
    }
    paths["tif"] = atomic_write(
        folder / f"{name}.tif",
        lambda p: tifffile.imwrite(
            p, volume, imagej=True, resolution=(1 / vx, 1 / vy), metadata={"spacing": vz, "unit": "um", "axes": "ZYX"}
        ),
    )
    paths["done"] = atomic_write(folder / f"{name}.done", lambda p: p.write_text(""))
    return paths


def read_truth(tif_path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ground truth ``(boxes, spines)`` written beside ``<session>.tif``."""
    tif_path = Path(tif_path)
    stem = tif_path.with_suffix("")
    boxes = pl.read_csv(f"{stem}.boxes.csv", schema=BOX_SCHEMA)
    spines = pl.read_csv(f"{stem}.spines.csv", schema=SPINE_SCHEMA)
    return boxes, spines


def simulate_landing(
    out_dir,
    animals: int = 2,
    sessions: int = 3,
    seed: int = 0,
    params: SimulationParams = SimulationParams(),
    skip_existing: bool = True,
    single_plane: bool = False,
) -> list[Path]:
    """Simulate several animals and write their sessions as a microscope would.

    Animals are ``mouse01, mouse02, ...``; sessions ``day00, day04, ...`` acquired
    at 10:00 UTC (+10 min per animal) from 2026-01-01 on. Animal ``k`` uses
    its own seed derived from ``(seed, k)``, so adding animals leaves earlier
    ones unchanged. With ``skip_existing``, sessions whose ``.tif`` exists are
    neither rendered nor rewritten. With ``single_plane``, each session is
    written as one plane, the projection of its stack (see ``project_session``).

    Returns
    -------
    list of Path
        The ``.tif`` of every session, written or already there.
    """
    out = []
    for k in range(animals):
        animal = f"mouse{k + 1:02d}"
        names = [f"day{DAYS_BETWEEN_SESSIONS * i:02d}" for i in range(sessions)]
        tifs = [Path(out_dir) / animal / f"{n}.tif" for n in names]
        existing = {i for i, t in enumerate(tifs) if skip_existing and t.exists()}
        if len(existing) < sessions:
            animal_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
            for sim in simulate_animal(params, sessions, animal_seed, skip_render=existing):
                if sim.index not in existing:
                    sim = project_session(sim) if single_plane else sim
                    when = FIRST_DAY + timedelta(days=DAYS_BETWEEN_SESSIONS * sim.index, minutes=10 * k)
                    write_session(sim, out_dir, animal, names[sim.index], when)
        out.extend(tifs)
    return out
