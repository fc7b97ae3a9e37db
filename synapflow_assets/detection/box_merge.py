"""Tiling of the detector: tile origins and the merge of tile outputs into one layer
(NMS: :mod:`synapflow_assets.geometry`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import centres, nms


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start coordinates of tiles covering ``length`` pixels (one tile when it fits).

    Parameters
    ----------
    length, tile, overlap : int

    Returns
    -------
    list of int
    """
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


@dataclass
class TileOutput:
    """Detections of one tile, in the tile's pixel coordinates.

    Attributes
    ----------
    y0, x0 : int
        Tile origin in the layer.
    height, width : int
        Tile extent in the layer.
    boxes : ndarray (N, 4)
        xyxy pixels relative to the tile.
    scores : ndarray (N,)
    labels : ndarray (N,)
    """

    y0: int
    x0: int
    height: int
    width: int
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def _core_bounds(origins: list[int], tile: int, length: int) -> list[tuple[float, float]]:
    """The part of each tile it owns: boundaries at the middle of the overlap with its neighbours."""
    bounds = []
    for i, start in enumerate(origins):
        low = 0.0 if i == 0 else (start + origins[i - 1] + tile) / 2
        high = float(length) if i == len(origins) - 1 else (origins[i + 1] + start + tile) / 2
        bounds.append((low, high))
    return bounds


def merge_tiles(
    tiles: list[TileOutput], layer_shape: tuple[int, int], iou_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge tile detections into layer coordinates.

    Each box is shifted by its tile's origin and clipped to the layer. A tile
    keeps only boxes whose centre lies in the part of the layer it owns (the
    overlaps are split in the middle), so a spine that straddles a tile border
    is taken from the tile that sees it whole; a class-agnostic NMS then
    removes any remaining duplicates.

    Parameters
    ----------
    tiles : list of TileOutput
    layer_shape : (height, width)
    iou_threshold : float

    Returns
    -------
    boxes : ndarray float64 (N, 4)
        xyxy layer pixels.
    scores : ndarray float64 (N,)
    labels : ndarray int64 (N,)
    """
    height, width = layer_shape
    ys = sorted({t.y0 for t in tiles})
    xs = sorted({t.x0 for t in tiles})
    tile_h = max((t.height for t in tiles), default=height)
    tile_w = max((t.width for t in tiles), default=width)
    y_core = dict(zip(ys, _core_bounds(ys, tile_h, height), strict=False))
    x_core = dict(zip(xs, _core_bounds(xs, tile_w, width), strict=False))
    all_boxes, all_scores, all_labels = [np.zeros((0, 4))], [np.zeros(0)], [np.zeros(0, np.int64)]
    for t in tiles:
        boxes = np.asarray(t.boxes, np.float64).reshape(-1, 4) + np.array([t.x0, t.y0, t.x0, t.y0])
        cx, cy = centres(boxes).T
        (ylo, yhi), (xlo, xhi) = y_core[t.y0], x_core[t.x0]
        own = (cy >= ylo) & (cy < yhi) & (cx >= xlo) & (cx < xhi)
        all_boxes.append(boxes[own])
        all_scores.append(np.asarray(t.scores, np.float64).reshape(-1)[own])
        all_labels.append(np.asarray(t.labels, np.int64).reshape(-1)[own])
    boxes = np.clip(np.concatenate(all_boxes), 0, [width, height, width, height])
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
    keep = nms(boxes, scores, iou_threshold=iou_threshold)
    return boxes[keep], scores[keep], labels[keep]
