"""One pixel size per animal: the sessions' dendrite-width estimates pooled, recorded once.

The same field imaged with the same objective and zoom has one pixel size, but
its estimate from the dendrite width moves by 10-20% between sessions (focus,
brightness, which dendrites are in focus). Tracking and every size in um need
one scale per animal, so the estimates of the sessions landed when the animal
is first read are pooled (their median) and recorded with their spread; later
sessions are read at the recorded size, and their own estimate is compared
with it. Sizes a lab states (settings or file metadata) are never replaced.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Stated pixel sizes of one animal that differ by less than this share are one size (rounding in headers).
SAME_SIZE_TOLERANCE = 0.05
#: A later session whose own estimate differs from the recorded one by more than this share is reported.
ESTIMATE_DISAGREEMENT = 0.3


@dataclass(frozen=True)
class AnimalScale:
    """The pooled pixel size of an animal.

    Attributes
    ----------
    pixel_size_um : float
        Median of the sessions' estimates (x and y).
    spread : float
        ``max / min - 1`` of the estimates pooled.
    estimates : dict
        The estimate (um/px) of each session pooled.
    """

    pixel_size_um: float
    spread: float
    estimates: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: the size, from how many sessions, and their spread."""
        return (
            f"{self.pixel_size_um:.4g} um/px, the median of {len(self.estimates)} session estimate(s) "
            f"(spread {self.spread:.0%})"
        )


def pool_estimates(estimates: Mapping[str, float | None]) -> AnimalScale | None:
    """The median and spread of the sessions' estimates that exist; None when no session has one."""
    found = {k: float(v) for k, v in estimates.items() if v is not None and np.isfinite(v) and v > 0}
    if not found:
        return None
    values = np.array(list(found.values()))
    return AnimalScale(float(np.median(values)), float(values.max() / values.min() - 1.0), found)


def read_record(path: Any) -> AnimalScale | None:
    """The recorded scale of an animal, or None when none was recorded."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return AnimalScale(float(data["pixel_size_um"]), float(data["spread"]), dict(data["estimates"]))


def _write_record(path: Any, scale: AnimalScale) -> None:
    text = json.dumps(asdict(scale), sort_keys=True, indent=1)
    if hasattr(path, "fs"):  # an object: one put is atomic
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def recorded_scale(path: Any, sessions: Mapping[str, Callable[[], float | None]]) -> AnimalScale | None:
    """The animal's recorded scale, pooling and recording it first when there is none yet.

    Parameters
    ----------
    path : Path or UPath
        The record (JSON).
    sessions : mapping
        For each landed session, a function giving its own estimate (um/px), or None when its file
        states the size or no dendrite was found. Called only when nothing is recorded yet.

    Returns
    -------
    AnimalScale or None
        None (and nothing recorded) when no session has an estimate.
    """
    recorded = read_record(path)
    if recorded is not None:
        return recorded
    pooled = pool_estimates({session: estimate() for session, estimate in sorted(sessions.items())})
    if pooled is not None:
        _write_record(path, pooled)
    return pooled


def same_size(sizes: Mapping[str, float], *, tolerance: float = SAME_SIZE_TOLERANCE) -> bool:
    """Whether pixel sizes differ by less than ``tolerance`` (relative to the smallest)."""
    values = np.array(list(sizes.values()), dtype=np.float64)
    return bool(len(values) == 0 or values.max() / values.min() - 1.0 < tolerance)


def landed_scale(landing: Any, animal: str, record: Any, **reader_options: Any) -> AnimalScale | None:
    """The recorded scale of an animal whose files state no pixel size, pooling its landed sessions first.

    Parameters
    ----------
    landing : Path or UPath
        The landing folder (``<animal>/<session>`` inputs).
    animal : str
    record : Path or UPath
        Where the animal's scale is recorded.
    **reader_options
        Options of :func:`.readers.read_volume` the sessions are read with (channel, z step, ...).

    Returns
    -------
    AnimalScale or None
        None when the settings state the pixel size, estimation is off, or no session needs an estimate.
    """
    from .errors import InputError
    from .landing import scan_landing, staged_input
    from .readers import read_volume

    if reader_options.get("pixel_size_um") is not None or not reader_options.get("estimate_pixel_size", True):
        return None
    options = {k: v for k, v in reader_options.items() if k != "max_layer_shift_px"}

    def estimate(path: Path, session: str) -> Callable[[], float | None]:
        def own_estimate() -> float | None:
            try:
                with staged_input(path, session) as local:
                    volume = read_volume(local, **options)
            except InputError:
                return None  # the session's own raw_volume fails on it, naming the problem
            if volume.voxel_size_source != "estimated":
                return None
            return volume.metadata["pixel_size_estimate"]["pixel_size_um"]

        return own_estimate

    found, _ = scan_landing(landing)
    return recorded_scale(
        record, {item.session: estimate(item.path, item.session) for item in found if item.animal == animal}
    )
