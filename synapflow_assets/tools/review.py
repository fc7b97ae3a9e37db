"""The correction loop: export the least confident events for a person to check, read their answers back.

``export_review`` writes, for the least confident events of an animal, a
picture of the spine in both sessions (the session it is compared with on the
left, the event's session on the right, the place boxed) and one CSV row per
event with an empty ``corrected_status`` column. ``read_review`` turns the
filled rows into corrections (``tracking.corrections``) and
``labels_from_corrections`` into detector training boxes for the spines the
detector missed.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from ..detection.self_training import boxes_on_layers
from ..imaging.errors import InputError
from ..imaging.ome_zarr import read_volume_zarr
from ..store.feature_store import query
from ..tracking.corrections import CORRECTION_SCHEMA, STATUSES

CROP_MARGIN_PX = 24
FROM_TRACKS = [
    "animal",
    "session",
    "session_index",
    "track_id",
    "status",
    "redetected",
    "confidence",
    "reason",
    "x_um",
    "y_um",
    "z_um",
]
"""Review columns copied from the event's row of `tracks`."""
REVIEW_COLUMNS = [*FROM_TRACKS, "x_px", "y_px", "layer", "other_session", "picture", "corrected_status", "note"]


def review_events(store: Path, animal: str, limit: int) -> pl.DataFrame:
    """The ``limit`` least confident, not yet corrected events and redetections of an animal."""
    safe = animal.replace("'", "''")
    return query(
        store,
        f"""
        SELECT t.*, o.session AS other_session FROM tracks t
        LEFT JOIN (SELECT DISTINCT animal, session, session_index FROM tracks) o
          ON o.animal = t.animal AND o.session_index = t.other_session_index
        WHERE t.animal = '{safe}' AND t.confidence IS NOT NULL AND t.corrected_by IS NULL
        ORDER BY t.confidence, t.session_index, t.track_id LIMIT {int(limit)}""",
    )


def _crop(volume: np.ndarray, box, layer: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A square window around ``box`` (max over its layer +-1), padded with zeros outside the volume, and the
    box in window coordinates."""
    nz, ny, nx = volume.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    half = int(np.ceil(max(x1 - x0, y1 - y0) / 2)) + CROP_MARGIN_PX
    cx, cy = int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2))
    wx0, wy0 = cx - half, cy - half
    window = np.zeros((2 * half, 2 * half), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(0, wx0), max(0, wy0), min(nx, wx0 + 2 * half), min(ny, wy0 + 2 * half)
    if sx1 > sx0 and sy1 > sy0:
        layers = slice(min(max(0, layer - 1), nz - 1), min(nz, max(layer + 2, 1)))
        window[sy0 - wy0 : sy1 - wy0, sx0 - wx0 : sx1 - wx0] = volume[layers, sy0:sy1, sx0:sx1].max(axis=0)
    return window, (x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0)


def _panel(image: np.ndarray, box, title: str, scale: int = 4) -> Image.Image:
    low, high = np.percentile(image, [1, 99.8]) if image.size else (0, 1)
    grey = (np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)
    panel = (
        Image.fromarray(grey)
        .resize((grey.shape[1] * scale, grey.shape[0] * scale), Image.Resampling.NEAREST)
        .convert("RGB")
    )
    draw = ImageDraw.Draw(panel)
    draw.rectangle([v * scale for v in box], outline=(255, 200, 0))
    draw.text((3, 3), title, fill=(0, 255, 255))
    return panel


def session_volumes(root: Path, animal: str) -> Callable[[str], np.ndarray]:
    """A reader of the animal's registered volumes by session name, each read once."""
    volumes: dict[str, np.ndarray] = {}

    def volume(session: str) -> np.ndarray:
        if session not in volumes:
            volumes[session] = np.asarray(read_volume_zarr(Path(root) / "volumes" / animal / f"{session}.ome.zarr")[0])
        return volumes[session]

    return volume


def event_picture(event: dict, volume: Callable[[str], np.ndarray]) -> Image.Image:
    """The spine of one event (a row of :func:`review_events`) in both sessions side by side: the session it is
    compared with on the left (when it has a place there), the event's session on the right, the place boxed."""
    layer = (event["first_layer"] + event["last_layer"]) // 2
    here, here_box = _crop(volume(event["session"]), [event[c] for c in ("xmin", "ymin", "xmax", "ymax")], layer)
    panels = [
        _panel(here, here_box, f"{event['session']} {event['status']}{' (redetected)' if event['redetected'] else ''}")
    ]
    if event["other_session"] is not None and event["other_xmin"] is not None:
        there, there_box = _crop(
            volume(event["other_session"]),
            [event[c] for c in ("other_xmin", "other_ymin", "other_xmax", "other_ymax")],
            int(event["other_layer"]),
        )
        panels.insert(0, _panel(there, there_box, event["other_session"]))
    picture = Image.new("RGB", (sum(p.width for p in panels) + 4 * (len(panels) - 1), max(p.height for p in panels)))
    x = 0
    for panel in panels:
        picture.paste(panel, (x, 0))
        x += panel.width + 4
    return picture


def check_animal(store: Path, animal: str) -> None:
    """Raise :class:`InputError` when the animal has no tracks in the store."""
    if not len(query(store, "SELECT 1 FROM tracks WHERE animal = '" + animal.replace("'", "''") + "' LIMIT 1")):
        raise InputError(store, f"no tracks of animal {animal!r} in the feature store")


def export_review(root: Path, animal: str, out: Path, *, limit: int = 20) -> pl.DataFrame:
    """Write ``review.csv`` and one PNG per event under ``out``; returns the CSV's rows.

    Raises
    ------
    InputError
        When the animal has no tracks in the store.
    """
    root, out = Path(root), Path(out)
    events = review_events(root / "features.duckdb", animal, limit)
    if not len(events):
        check_animal(root / "features.duckdb", animal)
    out.mkdir(parents=True, exist_ok=True)
    volume = session_volumes(root, animal)
    rows = []
    for event in events.iter_rows(named=True):
        name = f"{animal}_{event['session']}_track{event['track_id']}.png"
        event_picture(event, volume).save(out / name)
        rows.append(
            {
                **{c: event[c] for c in (*FROM_TRACKS, "other_session")},
                "x_px": (event["xmin"] + event["xmax"]) / 2,
                "y_px": (event["ymin"] + event["ymax"]) / 2,
                "layer": (event["first_layer"] + event["last_layer"]) // 2,
                "picture": name,
                "corrected_status": None,
                "note": None,
            }
        )
    strings = {c: pl.String for c in ("corrected_status", "note", "other_session")}
    table = (
        pl.DataFrame(rows, schema_overrides=strings).select(REVIEW_COLUMNS)
        if rows
        else pl.DataFrame(schema={c: pl.String for c in REVIEW_COLUMNS})
    )
    table.write_csv(out / "review.csv")
    return table


def read_review(path: Path, *, corrected_by: str | None = None) -> pl.DataFrame:
    """Corrections (:data:`CORRECTION_SCHEMA`) from the rows of a review CSV whose ``corrected_status`` is filled.

    Raises
    ------
    InputError
        On a missing column or an unknown status, naming the file and the row.
    """
    path = Path(path)
    try:
        table = pl.read_csv(path, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise InputError(path, f"cannot read the review CSV ({error})") from error
    missing = [
        c
        for c in ("animal", "session", "track_id", "x_um", "y_um", "z_um", "status", "corrected_status")
        if c not in table.columns
    ]
    if missing:
        raise InputError(path, f"not a review CSV: missing column(s) {', '.join(missing)}")
    filled = table.with_row_index("row", offset=2).filter(
        pl.col("corrected_status").str.strip_chars().str.len_chars() > 0
    )
    filled = filled.with_columns(pl.col("corrected_status").str.strip_chars().str.to_lowercase())
    unknown = filled.filter(~pl.col("corrected_status").is_in(STATUSES))
    if len(unknown):
        row = unknown.row(0, named=True)
        raise InputError(
            path,
            f"line {row['row']}: unknown status {row['corrected_status']!r}; expected one of {', '.join(STATUSES)}",
        )
    now = datetime.now(UTC)
    return filled.select(
        "animal",
        "session",
        pl.col("track_id").cast(pl.Int64),
        *[pl.col(c).cast(pl.Float64) for c in ("x_um", "y_um", "z_um")],
        computed_status="status",
        status="corrected_status",
        corrected_by=pl.lit(corrected_by or getpass.getuser()),
        corrected_at=pl.lit(now),
        note=pl.col("note") if "note" in filled.columns else pl.lit(None, pl.String),
    ).cast(CORRECTION_SCHEMA)


def labels_from_corrections(root: Path, animal: str) -> pl.DataFrame:
    """Detector training boxes (:data:`LABEL_COLUMNS`) for every corrected spine the detector had missed:
    rows corrected to present or new that were redetected or called eliminated. One box per layer of the
    spine's place, on the session's registered volume."""
    root = Path(root)
    places = query(
        root / "features.duckdb",
        f"""
        SELECT animal, session, xmin, ymin, xmax, ymax, first_layer, last_layer FROM tracks
        WHERE animal = '{animal.replace("'", "''")}' AND corrected_by IS NOT NULL AND status IN ('present', 'new')
          AND (redetected OR computed_status = 'eliminated') AND xmin IS NOT NULL""",
    )
    return boxes_on_layers(root, places)
