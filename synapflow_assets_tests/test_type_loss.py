"""Class-balanced loss of the detector: per-type weights from the training labels reach the loss, and only
through the queries matched to spines of that type."""

import numpy as np
import pytest
import torch
import transformers.loss.loss_rt_detr as rt_detr
from transformers.loss.loss_rt_detr import RTDetrLoss

from synapflow_assets.detection.model import SPINE_TYPES, build_model, tiny_spec
from synapflow_assets.detection.type_loss import type_weighted_loss, type_weights

N = len(SPINE_TYPES)


def test_rare_types_weigh_more_and_the_loss_keeps_its_size():
    labels = [np.array([0] * 60 + [1] * 30), np.array([3] * 9 + [2] * 1)]  # no filopodium at all
    weights = type_weights(labels, N, power=0.5, cap=5.0)
    counts = np.array([60, 30, 1, 9, 0])
    assert weights[2] > weights[3] > weights[1] > weights[0]
    assert weights[4] == weights.max()  # an absent type gets the cap, relative to the others
    assert (weights * counts).sum() == pytest.approx(counts.sum())
    assert weights[2] / weights[0] == pytest.approx(5.0 / (60 / 25) ** -0.5)  # branched at the cap (25: mean count)
    assert np.array_equal(type_weights(labels, N, power=0.0), np.ones(N))


def _batch() -> tuple[torch.Tensor, list[dict]]:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand(2, 3, 128, 128, generator=generator)
    boxes = torch.tensor([[0.3, 0.3, 0.1, 0.1], [0.7, 0.6, 0.12, 0.1]])
    return pixels, [
        {"class_labels": torch.tensor([0, 3]), "boxes": boxes},
        {"class_labels": torch.tensor([3]), "boxes": boxes[:1]},
    ]


def _loss(model, pixels, targets) -> torch.Tensor:
    torch.manual_seed(0)
    return model(pixel_values=pixels, labels=targets).loss.detach()


def test_type_weights_reach_the_loss_through_the_matched_queries():
    model = build_model(tiny_spec(), seed=0).eval()  # no denoising queries: the same matching every call
    pixels, targets = _batch()
    plain = _loss(model, pixels, targets)

    model.loss_function = type_weighted_loss(np.ones(N))
    assert _loss(model, pixels, targets) == pytest.approx(float(plain), rel=1e-5)

    absent = np.ones(N)
    absent[[1, 2, 4]] = 4.0  # types with no spine in the batch: nothing changes
    model.loss_function = type_weighted_loss(absent)
    assert _loss(model, pixels, targets) == pytest.approx(float(plain), rel=1e-5)

    thin = np.ones(N)
    thin[3] = 4.0
    model.loss_function = type_weighted_loss(thin)
    heavier = _loss(model, pixels, targets)
    thin[3] = 0.25
    model.loss_function = type_weighted_loss(thin)
    lighter = _loss(model, pixels, targets)
    assert float(lighter) < float(plain) < float(heavier)
    assert rt_detr.RTDetrLoss is RTDetrLoss  # the criterion is swapped only during the call
