"""Split box tables into per-sequence, per-frame arrays shared by all metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from synapflow_assets.geometry import BOX_COLUMNS, box_iou

SEQUENCE_COLUMN = "sequence"


@dataclass
class SequenceData:
    """Truth and predictions of one sequence, frame by frame.

    Attributes
    ----------
    gt_ids, tracker_ids : list of numpy.ndarray
        Per frame (sorted union of the frames of both tables), 0-based
        contiguous integer ids of the truth / predicted boxes.
    similarity : list of numpy.ndarray
        Per frame, the ``(n_gt, n_tracker)`` IoU matrix.
    num_gt_ids, num_tracker_ids : int
        Number of distinct truth / predicted ids in the sequence.
    """

    gt_ids: list
    tracker_ids: list
    similarity: list
    num_gt_ids: int
    num_tracker_ids: int

    @property
    def num_gt_dets(self) -> int:
        """Number of truth boxes."""
        return int(sum(len(ids) for ids in self.gt_ids))

    @property
    def num_tracker_dets(self) -> int:
        """Number of predicted boxes."""
        return int(sum(len(ids) for ids in self.tracker_ids))

    def trackeval_data(self) -> dict:
        """The ``data`` dict that ``trackeval`` metrics' ``eval_sequence`` expects."""
        return {
            "num_timesteps": len(self.gt_ids),
            "num_gt_ids": self.num_gt_ids,
            "num_tracker_ids": self.num_tracker_ids,
            "num_gt_dets": self.num_gt_dets,
            "num_tracker_dets": self.num_tracker_dets,
            "gt_ids": self.gt_ids,
            "tracker_ids": self.tracker_ids,
            "similarity_scores": self.similarity,
        }


def _check_columns(table: pl.DataFrame, frame: str, name: str) -> None:
    required = (frame, "id", *BOX_COLUMNS)
    missing = [column for column in required if column not in table.columns]
    if missing and table.height > 0:
        raise ValueError(f"{name} table lacks columns {missing}")


def _split(table: pl.DataFrame, frame: str, frames: np.ndarray):
    """Per-frame (ids, boxes) of one table, ids mapped to 0..k-1."""
    if table.height == 0:
        empty = [(np.zeros(0, dtype=np.intp), np.zeros((0, 4)))] * len(frames)
        return empty, 0
    table = table.sort(frame)
    frame_values = table[frame].to_numpy()
    ids = table["id"].to_numpy()
    unique_ids, dense_ids = np.unique(ids, return_inverse=True)
    dense_ids = dense_ids.astype(np.intp).ravel()
    boxes = table.select(BOX_COLUMNS).to_numpy().astype(float)
    starts = np.searchsorted(frame_values, frames, side="left")
    stops = np.searchsorted(frame_values, frames, side="right")
    per_frame = []
    for start, stop in zip(starts, stops, strict=False):
        frame_ids = dense_ids[start:stop]
        if len(np.unique(frame_ids)) != len(frame_ids):
            raise ValueError(f"an id occurs twice in {frame} {frame_values[start]}")
        per_frame.append((frame_ids, boxes[start:stop]))
    return per_frame, len(unique_ids)


def sequence_data(truth: pl.DataFrame, predicted: pl.DataFrame, frame: str) -> SequenceData:
    """Per-frame ids and IoU matrices of one sequence.

    Parameters
    ----------
    truth, predicted : polars.DataFrame
        Columns ``<frame>, id, xmin, ymin, xmax, ymax``; ids may be any
        sortable values (non-contiguous ints, strings).
    frame : str
        Name of the frame column (``"layer"``, ``"session"``, ...).

    Returns
    -------
    SequenceData

    Raises
    ------
    ValueError
        If a column is missing or an id occurs twice in one frame.
    """
    _check_columns(truth, frame, "truth")
    _check_columns(predicted, frame, "predicted")
    values = [t[frame].to_numpy() for t in (truth, predicted) if t.height > 0]
    frames = np.unique(np.concatenate(values)) if values else np.zeros(0, dtype=int)
    gt, num_gt_ids = _split(truth, frame, frames)
    tr, num_tr_ids = _split(predicted, frame, frames)
    return SequenceData(
        gt_ids=[ids for ids, _ in gt],
        tracker_ids=[ids for ids, _ in tr],
        similarity=[box_iou(g, t) for (_, g), (_, t) in zip(gt, tr, strict=False)],
        num_gt_ids=num_gt_ids,
        num_tracker_ids=num_tr_ids,
    )


def split_sequences(truth: pl.DataFrame, predicted: pl.DataFrame) -> dict:
    """Split both tables by the optional ``sequence`` column.

    Returns
    -------
    dict
        ``{sequence name: (truth part, predicted part)}``, in sorted order; a
        single entry named ``"0"`` when there is no ``sequence`` column. A
        sequence present on one side only gets an empty table on the other.

    Raises
    ------
    ValueError
        If only one table (and a non-empty one on the other side) has the
        ``sequence`` column.
    """
    has_truth = SEQUENCE_COLUMN in truth.columns
    has_pred = SEQUENCE_COLUMN in predicted.columns
    if has_truth != has_pred and (truth.height > 0 and predicted.height > 0):
        raise ValueError("the 'sequence' column must be in both tables or in neither")
    if not (has_truth or has_pred):
        return {"0": (truth, predicted)}
    names: set[str] = set()
    for table, has in ((truth, has_truth), (predicted, has_pred)):
        if has:
            names.update(str(v) for v in table[SEQUENCE_COLUMN].unique().to_list())

    def part(table, has, name):
        if not has:
            return table.clear()
        return table.filter(pl.col(SEQUENCE_COLUMN).cast(pl.String) == name)

    return {name: (part(truth, has_truth, name), part(predicted, has_pred, name)) for name in sorted(names)}
