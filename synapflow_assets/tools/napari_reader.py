"""napari reader (npe2, ``napari.yaml``) of a folder written by ``export-napari``: the registered time series as
an image in micrometres, the spines as points and their tracks, all overlaid.

Only numpy, zarr and the standard library are imported, so napari loads it without the rest of the package.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIDECAR = "napari.json"
STATUS_COLOURS = {"present": "yellow", "new": "cyan", "eliminated": "red", "unconfirmed": "gray"}
"""Point colours by status (those of the tracking overlay)."""


def get_reader(path: str | list[str]) -> Callable | None:
    """The reader of ``path`` when it is an ``export-napari`` folder (it holds ``napari.json``), else None."""
    if isinstance(path, list):
        path = path[0] if len(path) == 1 else ""
    return read_export if path and (Path(path) / SIDECAR).is_file() else None


def _columns(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    return {name: [row[name] for row in rows] for name in reader.fieldnames or []}


def _numbers(values: list[str]) -> np.ndarray:
    return np.array([float(v) if v not in ("", "null", "NaN") else np.nan for v in values], dtype=np.float64)


def read_export(path: str | list[str]) -> list[tuple]:
    """The layers of an ``export-napari`` folder: ``(data, kwargs, layer type)`` for the image, the points and
    the tracks, in micrometres (the image with its voxel size as ``scale``, the tables at scale 1)."""
    import zarr

    folder = Path(path[0] if isinstance(path, list) else path)
    sidecar = json.loads((folder / SIDECAR).read_text())
    image = zarr.open_group(str(folder / sidecar["image"]), mode="r")["0"]
    if not isinstance(image, zarr.Array):
        raise ValueError(f"{folder / sidecar['image']}: no image array '0' (not written by export-napari)")
    axes = sidecar["axes"]
    units = tuple("" if a == "t" else sidecar["units"] for a in axes)
    sample = np.asarray(image[0, :, ::4, ::4], dtype=np.float32)  # the first session, coarsely
    low, high = np.percentile(sample, [1, 99.8]) if sample.size else (0.0, 1.0)
    layers: list[tuple] = [
        (
            image,
            {
                "name": sidecar["animal"],
                "scale": sidecar["scale"],
                "axis_labels": tuple(axes),
                "units": units,
                "colormap": "gray",
                "contrast_limits": [float(low), float(max(high, low + 1))],
                "metadata": {"sessions": sidecar["t"], "registered_to": sidecar["registered_to"]},
            },
            "image",
        )
    ]
    points = _columns(folder / sidecar["points"]["file"])
    coordinates = ["t", "z_um", "y_um", "x_um"]
    if points and points["t"]:
        data = np.column_stack([_numbers(points[c]) for c in coordinates])
        status = points["status"]
        layers.append(
            (
                data,
                {
                    "name": "spines",
                    "axis_labels": tuple(axes),
                    "units": units,
                    "size": 2.0,
                    "features": {"status": status, "size": _numbers(points["size"]), "track_id": points["track_id"]},
                    "face_color": [STATUS_COLOURS.get(s, "white") for s in status],
                    "opacity": 0.6,
                    "out_of_slice_display": True,
                },
                "points",
            )
        )
    tracks = _columns(folder / sidecar["tracks"]["file"])
    if tracks and tracks["t"]:
        data = np.column_stack([_numbers(tracks[c]) for c in ["track_id", *coordinates]])
        layers.append((data, {"name": "tracks", "units": units, "tail_length": len(sidecar["t"])}, "tracks"))
    return layers
