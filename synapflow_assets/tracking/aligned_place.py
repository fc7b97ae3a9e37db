"""Where a spine of one session lies in another session of the same animal, through the chain of alignments."""

from __future__ import annotations

import polars as pl

from .incremental import AnimalTracker, SessionInput


def move_boxes(
    tracker: AnimalTracker, sessions: list[SessionInput], boxes: pl.DataFrame, source: int, target: int
) -> pl.DataFrame:
    """Boxes of session ``source`` (``xmin, ymin, xmax, ymax, first_layer, last_layer``) at their aligned place in
    session ``target`` (either direction), each shifted by the move of its centre, with ``in_view``: whether the
    moved centre lies inside ``target``'s field of view (``border_px`` from its edge) and its layers overlap it."""
    ends = (source, target) if source < target else (target, source)
    steps = [
        tracker.alignment(a, b)
        for a, b in zip(sessions[ends[0] : ends[1] + 1], sessions[ends[0] + 1 : ends[1] + 1], strict=False)
    ]
    centre = boxes.select((pl.col("ymin") + pl.col("ymax")) / 2, (pl.col("xmin") + pl.col("xmax")) / 2).to_numpy()
    yx, dz = centre.copy(), 0
    for step in steps if source < target else steps[::-1]:
        yx = step.map_points(yx) if source < target else step.map_points_back(yx)
        dz += step.z_shift if source < target else -step.z_shift
    nz, ny, nx = sessions[target].shape_zyx
    d = yx - centre
    border = tracker.link_params.border_px
    moved = boxes.with_columns(
        ymin=pl.col("ymin") + d[:, 0],
        ymax=pl.col("ymax") + d[:, 0],
        xmin=pl.col("xmin") + d[:, 1],
        xmax=pl.col("xmax") + d[:, 1],
        first_layer=pl.col("first_layer") + dz,
        last_layer=pl.col("last_layer") + dz,
    )
    return moved.with_columns(
        in_view=pl.Series(
            (yx[:, 0] >= border)
            & (yx[:, 0] <= ny - 1 - border)
            & (yx[:, 1] >= border)
            & (yx[:, 1] <= nx - 1 - border)
            & (moved["last_layer"].to_numpy() >= 0)
            & (moved["first_layer"].to_numpy() <= nz - 1),
            dtype=pl.Boolean,
        )
    )
