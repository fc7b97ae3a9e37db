"""The lab's own data teaches the detector: training boxes from its tracks (``train-detector --self-train``).

A track the detector found in at least ``min_detected`` sessions is a spine. Where tracking kept it in a
session without a box of the detector (``redetected``: the detector answered below its threshold at the aligned
place, and the evidence there was confident), that session's place becomes a training box: these are the dim
spines the detector misses, and what it learns from. Every box the detector did find is kept too (a spine left
unlabelled on a training layer would teach it that spines are background). A person's corrections decide over
both: a place corrected to present or new is a box, one corrected to eliminated, out of view or not a spine
is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..imaging.ome_zarr import read_volume_info
from ..store.feature_store import query

LABEL_COLUMNS = ["volume", "layer", "xmin", "ymin", "xmax", "ymax", "type"]
"""Columns of a training-box CSV (``--extra-labels``): a registered volume, its layer and a box in its pixels."""


@dataclass(frozen=True)
class SelfTrainParams:
    """Which tracked places become training boxes.

    Attributes
    ----------
    min_detected : int
        Sessions in which the detector itself found a track (a box at its threshold, not a redetection) for its
        redetected places to count.
    min_confidence : float
        Confidence (0-1) of a redetected place below which it is left out.
    """

    min_detected: int = 2
    min_confidence: float = 0.8


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def tracked_places(store: Path, animals: Sequence[str] | None = None, *, params: SelfTrainParams) -> pl.DataFrame:
    """The places of :func:`pseudo_labels`, one row per track and session, with ``source`` (``detector``,
    ``redetected`` or ``correction``) and the spine's ``type`` where the detector gave one."""
    where = f"AND t.animal IN ({_sql_list(animals)})" if animals else ""
    return query(
        store,
        f"""
        WITH counted AS (
            SELECT animal, track_id, count(*) FILTER (WHERE detected AND NOT coalesce(redetected, false)) AS n_found
            FROM tracks GROUP BY ALL
        )
        SELECT t.animal, t.session, t.xmin, t.ymin, t.xmax, t.ymax, t.first_layer, t.last_layer, s.type,
            CASE WHEN t.corrected_by IS NOT NULL THEN 'correction'
                 WHEN coalesce(t.redetected, false) THEN 'redetected' ELSE 'detector' END AS source
        FROM tracks t JOIN counted c ON c.animal = t.animal AND c.track_id = t.track_id
        LEFT JOIN spines s ON s.animal = t.animal AND s.session = t.session AND s.spine_key = t.spine_key
        WHERE t.status IN ('present', 'new') AND t.xmin IS NOT NULL {where}
          AND (t.corrected_by IS NOT NULL
               OR (t.detected AND NOT coalesce(t.redetected, false))
               OR (t.redetected AND c.n_found >= {int(params.min_detected)}
                   AND coalesce(t.confidence, 1.0) >= {float(params.min_confidence)}))
        ORDER BY t.animal, t.session, t.track_id""",
    )


def boxes_on_layers(root: Path, places: pl.DataFrame) -> pl.DataFrame:
    """One training box (:data:`LABEL_COLUMNS`) per layer of each place (``animal, session, xmin, ymin, xmax,
    ymax, first_layer, last_layer`` and optionally ``type``), on the session's registered volume; layers outside
    the volume are dropped."""
    if not len(places):
        return pl.DataFrame(schema={c: (pl.String if c in ("volume", "type") else pl.Float64) for c in LABEL_COLUMNS})
    root = Path(root)
    if "type" not in places.columns:
        places = places.with_columns(type=pl.lit(None, pl.String))
    volume = pl.format("{}/volumes/{}/{}.ome.zarr", pl.lit(str(root)), pl.col("animal"), pl.col("session"))
    places = places.with_columns(volume=volume)
    depth = {v: read_volume_info(Path(v))[0][0] for v in places["volume"].unique()}
    return (
        places.with_columns(layer=pl.int_ranges(pl.col("first_layer").clip(0), pl.col("last_layer") + 1))
        .explode("layer")
        .filter(pl.col("layer") < pl.col("volume").replace_strict(depth, return_dtype=pl.Int64))
        .select(LABEL_COLUMNS)
    )


def pseudo_labels(
    root: Path, animals: Sequence[str] | None = None, *, params: SelfTrainParams = SelfTrainParams()
) -> tuple[pl.DataFrame, dict]:
    """Training boxes from a lab's tracks (see the module docstring), and what they came from.

    Parameters
    ----------
    root : Path
        The lab's data root (``features.duckdb`` and ``volumes/``).
    animals : sequence of str, optional
        Only these animals; all by default.
    params : SelfTrainParams

    Returns
    -------
    labels : polars.DataFrame
        :data:`LABEL_COLUMNS`, one row per box and layer.
    summary : dict
        ``animals``, ``sessions``, ``places`` and ``boxes``, and the places by source (``from_detector``,
        ``from_redetected``, ``from_corrections``).
    """
    places = tracked_places(Path(root) / "features.duckdb", animals, params=params)
    counts = dict(places.group_by("source").len().iter_rows())
    summary = {
        "animals": places["animal"].n_unique(),
        "sessions": places.select("animal", "session").n_unique(),
        "places": len(places),
        "from_detector": counts.get("detector", 0),
        "from_redetected": counts.get("redetected", 0),
        "from_corrections": counts.get("correction", 0),
    }
    labels = boxes_on_layers(root, places.drop("source"))
    return labels, {**summary, "boxes": len(labels)}
