"""Augmented training batches for the spine detector: random crops (biased to spines) with zoom,
flips, 90-degree rotations, gamma, intensity and noise, and the model's inputs and labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import Sample, normalise, resize


@dataclass(frozen=True)
class AugmentParams:
    """Augmentation ranges.

    Attributes
    ----------
    scale : (float, float)
        Range of the zoom factor (log-uniform) of layers without boxes.
    spine_size : (float, float) or None
        Range (log-uniform) of the median spine size, sqrt(width x height) in
        pixels, that a layer with boxes is zoomed to; the real training set
        mixes 1024 px images (spines ~16 px) with 512 px ones (~9 px, like the
        validation split), so zooming to a size range covers both scales.
        None: use ``scale`` for every layer.
    max_scale : float
        Zoom factors are kept within [1 / max_scale, max_scale].
    spine_bias : float
        Probability that a crop is centred near a random spine.
    gamma : (float, float)
        Range of the gamma exponent (log-uniform).
    contrast : (float, float)
        Range of the intensity gain.
    offset : float
        Maximal absolute intensity offset.
    noise : float
        Maximal standard deviation of added Gaussian noise.
    min_visible : float
        Boxes keep at least this share of their area after cropping, else dropped.
    model_pixel_size_um : float
        A sample whose pixel size is known is zoomed to this pixel size (the
        detector's), times a log-uniform jitter within ``pixel_size_jitter``
        (wrong or estimated metadata), instead of by its spine size.
    pixel_size_jitter : float
    type_weights : tuple of float
        Relative chance that a spine-centred crop is centred on a spine of each
        type (mushroom, stubby, branched, thin, filopodium): rare types are
        seen more often.
    """

    scale: tuple[float, float] = (0.75, 1.35)
    spine_size: tuple[float, float] | None = (6.5, 20.0)
    max_scale: float = 3.0
    spine_bias: float = 0.8
    gamma: tuple[float, float] = (0.7, 1.4)
    contrast: tuple[float, float] = (0.75, 1.25)
    offset: float = 0.1
    noise: float = 0.05
    min_visible: float = 0.5
    model_pixel_size_um: float = 0.12
    pixel_size_jitter: float = 1.3
    type_weights: tuple[float, ...] = (1.0, 1.0, 4.0, 1.5, 4.0)


def augment(
    sample: Sample, crop: int, rng: np.random.Generator, params: AugmentParams = AugmentParams()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random crop (biased to spines) with zoom, flips, 90-degree rotations, gamma, intensity and noise.

    Parameters
    ----------
    sample : Sample
    crop : int
        Output size (crop x crop pixels).
    rng : numpy.random.Generator
    params : AugmentParams

    Returns
    -------
    image : ndarray float32 (crop, crop)
        Normalised image; regions outside the layer are 0.
    boxes : ndarray float32 (N, 4)
        xyxy pixels in the output.
    labels : ndarray int64 (N,)
    """
    h, w = sample.image.shape
    scale = float(np.exp(rng.uniform(*np.log(params.scale))))
    if sample.pixel_size_um is not None:
        jitter = float(np.exp(rng.uniform(-1, 1) * np.log(params.pixel_size_jitter)))
        scale = sample.pixel_size_um / params.model_pixel_size_um * jitter
    elif params.spine_size is not None and len(sample.boxes):
        sizes = np.sqrt(np.prod(np.clip(sample.boxes[:, 2:] - sample.boxes[:, :2], 1.0, None), axis=1))
        target = float(np.exp(rng.uniform(*np.log(params.spine_size))))
        scale = float(np.clip(target / np.median(sizes), 1 / params.max_scale, params.max_scale))
    src = crop / scale  # source window size
    if len(sample.boxes) and rng.random() < params.spine_bias:
        weights = np.asarray(params.type_weights, np.float64)[np.clip(sample.labels, 0, len(params.type_weights) - 1)]
        box = sample.boxes[rng.choice(len(sample.boxes), p=weights / weights.sum())]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0 = cx - src * rng.uniform(0.15, 0.85)
        y0 = cy - src * rng.uniform(0.15, 0.85)
    else:
        x0 = rng.uniform(0.0, max(0.0, w - src))
        y0 = rng.uniform(0.0, max(0.0, h - src))
    # keep the window inside the layer when it fits (centred on the layer when it does not)
    x0 = float(np.clip(x0, min(0.0, (w - src) / 2), max(0.0, w - src))) if w >= src else (w - src) / 2
    y0 = float(np.clip(y0, min(0.0, (h - src) / 2), max(0.0, h - src))) if h >= src else (h - src) / 2
    x0, y0 = int(round(x0)), int(round(y0))
    s = int(round(src))
    window = np.zeros((s, s), np.float32)
    ya, yb, xa, xb = max(y0, 0), min(y0 + s, h), max(x0, 0), min(x0 + s, w)
    if yb > ya and xb > xa:
        window[ya - y0 : yb - y0, xa - x0 : xb - x0] = normalise(sample.image[ya:yb, xa:xb], sample.low, sample.high)
    image: np.ndarray = window
    if s != crop:
        image = resize(window, (crop, crop))
    factor = crop / s
    boxes = (sample.boxes - np.array([x0, y0, x0, y0], np.float32)) * factor
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    clipped = np.clip(boxes, 0, crop)
    visible = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
    keep = (visible >= params.min_visible * np.maximum(area, 1e-6)) & (visible > 1.0)
    boxes, labels = clipped[keep], sample.labels[keep]
    # flips and rotations (act on the image and the boxes together)
    if rng.random() < 0.5:
        image = image[:, ::-1]
        boxes = np.stack([crop - boxes[:, 2], boxes[:, 1], crop - boxes[:, 0], boxes[:, 3]], 1)
    if rng.random() < 0.5:
        image = image[::-1, :]
        boxes = np.stack([boxes[:, 0], crop - boxes[:, 3], boxes[:, 2], crop - boxes[:, 1]], 1)
    if rng.random() < 0.5:  # transpose: with the flips this gives all 90-degree rotations
        image = image.T
        boxes = boxes[:, [1, 0, 3, 2]]
    # intensity
    image = np.clip(image, 0, None) ** float(np.exp(rng.uniform(*np.log(params.gamma))))
    image = image * rng.uniform(*params.contrast) + rng.uniform(-params.offset, params.offset)
    sigma = rng.uniform(0, params.noise)
    if sigma > 0:
        image = image + rng.normal(0, sigma, image.shape)
    image = np.clip(image, 0, 1.5).astype(np.float32)
    return np.ascontiguousarray(image), np.asarray(boxes, np.float32).reshape(-1, 4), labels.astype(np.int64)


def to_model_inputs(images: list[np.ndarray]) -> torch.Tensor:
    """Stack normalised grey images (same size) into ``pixel_values`` (B, 3, H, W)."""
    batch = torch.from_numpy(np.stack(images)).float()
    return batch[:, None].expand(-1, 3, -1, -1).contiguous()


def to_model_labels(boxes: list[np.ndarray], labels: list[np.ndarray], size: tuple[int, int]) -> list[dict]:
    """RT-DETR training targets: normalised (cx, cy, w, h) boxes and ``class_labels``.

    Parameters
    ----------
    boxes : list of ndarray (N, 4)
        xyxy pixels.
    labels : list of ndarray (N,)
    size : (height, width)

    Returns
    -------
    list of dict
    """
    h, w = size
    targets = []
    for b, l in zip(boxes, labels, strict=False):
        t = torch.as_tensor(np.asarray(b, np.float32)).reshape(-1, 4)
        cxcywh = torch.stack(
            [
                (t[:, 0] + t[:, 2]) / 2 / w,
                (t[:, 1] + t[:, 3]) / 2 / h,
                (t[:, 2] - t[:, 0]) / w,
                (t[:, 3] - t[:, 1]) / h,
            ],
            1,
        )
        targets.append({"class_labels": torch.as_tensor(l, dtype=torch.long), "boxes": cxcywh.clamp(0, 1)})
    return targets


def make_batch(
    pool: list[Sample], batch_size: int, crop: int, rng: np.random.Generator, params: AugmentParams = AugmentParams()
) -> tuple[torch.Tensor, list[dict]]:
    """A random augmented batch from a pool of samples.

    Parameters
    ----------
    pool : list of Sample
    batch_size, crop : int
    rng : numpy.random.Generator
    params : AugmentParams

    Returns
    -------
    pixel_values : Tensor (B, 3, crop, crop)
    labels : list of dict
        RT-DETR targets.
    """
    images, boxes, labels = [], [], []
    for index in rng.integers(len(pool), size=batch_size):
        image, b, l = augment(pool[int(index)], crop, rng, params)
        images.append(image)
        boxes.append(b)
        labels.append(l)
    return to_model_inputs(images), to_model_labels(boxes, labels, (crop, crop))
