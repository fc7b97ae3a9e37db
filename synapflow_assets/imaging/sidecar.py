"""The optional sidecar JSON beside an input stack.

For ``path/day00.tif`` (or ``day00.ome.tif``) the sidecar is
``path/day00.json``; for a PNG folder ``path/day00/`` it is
``path/day00.json`` (:func:`.readers.sidecar_path`, from the readers' table of suffixes).
Format (every key optional)::

    {"voxel_size_um": [z, y, x], "acquired_at": "ISO-8601",
     "channel": 1, "n_channels": 2}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..store.locations import as_path
from .errors import InputError
from .tiff_metadata import parse_datetime


@dataclass(frozen=True)
class Sidecar:
    """Validated content of a sidecar JSON file."""

    path: Path
    voxel_size_um: tuple[float, float, float] | None = None
    acquired_at: datetime | None = None
    channel: int | None = None
    n_channels: int | None = None


def _int(data: dict, key: str, minimum: int, where: Path) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(where, f"sidecar '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def read_sidecar(path: str | Path) -> Sidecar | None:
    """Read and validate a sidecar.

    Parameters
    ----------
    path : str or Path
        The sidecar JSON of an input stack (:func:`.readers.sidecar_path` of it); it may not exist.

    Returns
    -------
    Sidecar or None
        None when there is no sidecar file.

    Raises
    ------
    InputError
        Invalid JSON, not an object, voxel sizes that are not three positive
        finite numbers, an unparseable ``acquired_at``, bad channel numbers.
    """
    where = as_path(path)
    if not where.is_file():
        return None
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(where, f"sidecar is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(where, "sidecar JSON must be an object with keys such as 'voxel_size_um'")
    voxel = data.get("voxel_size_um")
    if voxel is not None:
        ok = (
            isinstance(voxel, list)
            and len(voxel) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in voxel)
        )
        if not ok:
            raise InputError(where, f"sidecar 'voxel_size_um' must be [z, y, x] numbers, got {voxel!r}")
        if not all(math.isfinite(v) and v > 0 for v in voxel):
            raise InputError(where, f"sidecar voxel sizes must be positive, got {voxel!r}")
        voxel = tuple(float(v) for v in voxel)
    acquired = data.get("acquired_at")
    if acquired is not None:
        parsed = parse_datetime(acquired) if isinstance(acquired, str) else None
        if parsed is None:
            raise InputError(where, f"sidecar 'acquired_at' is not an ISO-8601 timestamp: {acquired!r}")
        acquired = parsed
    return Sidecar(
        path=where,
        voxel_size_um=voxel,
        acquired_at=acquired,
        channel=_int(data, "channel", 0, where),
        n_channels=_int(data, "n_channels", 1, where),
    )
