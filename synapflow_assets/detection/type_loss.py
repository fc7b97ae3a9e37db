"""Class-balanced training loss of the detector: rare spine types (branched, filopodia, thin) weigh more.

RT-DETR's classification loss (varifocal, one sigmoid per type) is summed over queries; a query matched to a
spine of type ``c`` is weighted by ``w[c]`` (Cui et al., 2019: class-balanced loss, weight per sample of its
true class), an unmatched query by 1. With all weights 1 the loss is RT-DETR's own
(``transformers.loss.loss_rt_detr``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_transforms import center_to_corners_format
from transformers.loss.loss_for_object_detection import box_iou
from transformers.loss.loss_rt_detr import RTDetrForObjectDetectionLoss, RTDetrLoss


def type_weights(labels: Iterable[np.ndarray], n_types: int, *, power: float = 0.5, cap: float = 5.0) -> np.ndarray:
    """Per-type loss weights from the training labels: ``(count / mean count) ** -power``, at most ``cap``,
    scaled to a mean of 1 over the spines (so the loss keeps its size); a type with no spine gets ``cap``.

    Parameters
    ----------
    labels : iterable of ndarray int
        The type labels of each training sample.
    n_types : int
    power : float
        0: all weights 1; 1: inverse frequency.
    cap : float
        The largest weight relative to the mean.

    Returns
    -------
    ndarray float (n_types,)
    """
    counts = np.zeros(n_types, np.float64)
    for sample_labels in labels:
        counts += np.bincount(np.asarray(sample_labels, np.int64), minlength=n_types)[:n_types]
    if counts.sum() == 0 or power == 0:
        return np.ones(n_types)
    present = counts > 0
    weights = np.full(n_types, cap)
    weights[present] = np.minimum((counts[present] / counts[present].mean()) ** -power, cap)
    return weights / (weights * counts).sum() * counts.sum()


class TypeWeightedLoss(RTDetrLoss):
    """``RTDetrLoss`` whose varifocal term weighs each matched query by the weight of its spine's type."""

    def __init__(self, config, weights: Sequence[float] | np.ndarray):
        super().__init__(config)
        self.type_weights = torch.as_tensor(list(weights), dtype=torch.float32)

    def loss_labels_vfl(self, outputs, targets, indices, num_boxes, log=True):
        idx = self._get_source_permutation_idx(indices)
        src_boxes = outputs["pred_boxes"][idx]
        target_boxes = torch.cat([t["boxes"][i] for t, (_, i) in zip(targets, indices, strict=True)], dim=0)
        ious, _ = box_iou(center_to_corners_format(src_boxes.detach()), center_to_corners_format(target_boxes))
        ious = torch.diag(ious)
        src_logits = outputs["logits"]
        dtype = src_logits.dtype
        matched = torch.cat([t["class_labels"][i] for t, (_, i) in zip(targets, indices, strict=True)])
        target_classes = torch.full(src_logits.shape[:2], self.num_classes, dtype=torch.int64, device=src_logits.device)
        target_classes[idx] = matched
        target = F.one_hot(target_classes, num_classes=self.num_classes + 1)[..., :-1]
        score = torch.zeros_like(target_classes, dtype=dtype)
        score[idx] = ious.to(dtype)
        target_score = score.unsqueeze(-1) * target
        pred_score = F.sigmoid(src_logits.detach())
        weight = (self.alpha * pred_score.pow(self.gamma) * (1 - target) + target_score).to(dtype)
        per_query = torch.ones(src_logits.shape[:2], dtype=dtype, device=src_logits.device)
        per_query[idx] = self.type_weights.to(device=src_logits.device, dtype=dtype)[matched]
        loss = F.binary_cross_entropy_with_logits(src_logits, target_score, weight=weight, reduction="none")
        loss = (loss * per_query.unsqueeze(-1)).mean(1).sum() * src_logits.shape[1] / num_boxes
        return {"loss_vfl": loss}


def type_weighted_loss(weights: Sequence[float] | np.ndarray) -> Callable:
    """A loss function for ``RTDetrForObjectDetection.loss_function`` (set it on the model) that is RT-DETR's
    with :class:`TypeWeightedLoss` as its criterion."""

    def loss_function(*args, **kwargs):
        import transformers.loss.loss_rt_detr as rt_detr

        original = rt_detr.RTDetrLoss
        rt_detr.RTDetrLoss = lambda config: TypeWeightedLoss(config, weights)
        try:
            return RTDetrForObjectDetectionLoss(*args, **kwargs)
        finally:
            rt_detr.RTDetrLoss = original

    return loss_function
