"""Real annotated layers for training and validation: the shared ``spine2d_polygons`` set (YOLO labels),
and corrected boxes exported by ``review --export-labels``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..environment import Environment
from .data import Sample, make_sample


def shared_data_root() -> Path:
    """``$SYNAPFLOW_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = Environment.read().shared_data
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def real_split_folder(split: str) -> Path:
    """Folder of a split (``train`` / ``val``) of ``spine2d_polygons``."""
    return shared_data_root() / "spine2d_polygons" / split


def read_yolo_labels(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (xyxy px) and labels of a YOLO label file with boxes or polygons.

    Parameters
    ----------
    path : Path
    width, height : int
        Image size in pixels.

    Returns
    -------
    boxes : ndarray float32 (N, 4)
    labels : ndarray int64 (N,)
    """
    boxes, labels = [], []
    for line in Path(path).read_text().splitlines():
        values = line.split()
        if len(values) < 5:
            continue
        label, coords = int(float(values[0])), np.array(values[1:], np.float64)
        if len(coords) == 4:
            cx, cy, w, h = coords
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        else:
            xs, ys = coords[0::2], coords[1::2]
            box = [xs.min(), ys.min(), xs.max(), ys.max()]
        boxes.append(np.array(box) * [width, height, width, height])
        labels.append(label)
    clipped = np.clip(np.array(boxes, np.float32).reshape(-1, 4), 0, [width, height, width, height])
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped[keep].astype(np.float32), np.array(labels, np.int64)[keep]


def labelled_samples(path: Path) -> list[Sample]:
    """Layers of registered volumes with corrected boxes (``review --labels``): one sample per (volume,
    layer), its boxes from the CSV (``volume, layer, xmin, ymin, xmax, ymax, type``; an unknown type is
    taken as the first of ``SPINE_TYPES``), at the volume's pixel size.

    Raises
    ------
    InputError
        When the file or a volume it names cannot be read.
    """
    import polars as pl

    from ..imaging.errors import InputError
    from ..imaging.ome_zarr import read_volume_zarr
    from .model import SPINE_TYPES

    path = Path(path)
    try:
        table = pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise InputError(path, f"cannot read the extra labels ({error})") from error
    missing = [c for c in ("volume", "layer", "xmin", "ymin", "xmax", "ymax") if c not in table.columns]
    if missing:
        raise InputError(path, f"not a labels CSV (review --labels): missing column(s) {', '.join(missing)}")
    if "type" not in table.columns:
        table = table.with_columns(type=pl.lit(None, pl.String))
    codes = {name: k for k, name in enumerate(SPINE_TYPES)}
    samples = []
    for (volume_path,), rows in table.group_by("volume", maintain_order=True):
        try:
            volume, voxel, _ = read_volume_zarr(Path(volume_path))
        except Exception as error:  # zarr raises several types for a missing or damaged store
            raise InputError(Path(volume_path), f"cannot read the volume named in {path} ({error})") from error
        for (layer,), boxes in rows.group_by("layer", maintain_order=True):
            labels = boxes["type"].replace_strict(codes, default=0, return_dtype=pl.Int64).to_numpy()
            samples.append(
                make_sample(
                    np.asarray(volume[int(layer)]),
                    boxes.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
                    labels,
                    f"{Path(volume_path).name}:{layer}",
                    pixel_size_um=float(voxel[2]),
                )
            )
    return samples


def real_samples(split: str, folder: Path | None = None) -> list[Sample]:
    """The real annotated images of a split (empty list when the folder is absent).

    Parameters
    ----------
    split : str
        ``train`` or ``val``.
    folder : Path, optional
        Overrides :func:`real_split_folder`.

    Returns
    -------
    list of Sample
    """
    from PIL import Image

    folder = Path(folder) if folder is not None else real_split_folder(split)
    if not folder.is_dir():
        return []
    samples = []
    for png in sorted(folder.glob("*.png"), key=lambda p: (len(p.stem), p.stem)):
        with Image.open(png) as im:
            image = np.asarray(im.convert("L") if im.mode not in ("L", "I;16", "I") else im)
        labels_file = png.with_suffix(".txt")
        h, w = image.shape
        boxes, labels = (
            read_yolo_labels(labels_file, w, h)
            if labels_file.exists()
            else (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        )
        samples.append(make_sample(image, boxes, labels, png.name))
    return samples


# ---------------------------------------------------------------- raw-like layers
