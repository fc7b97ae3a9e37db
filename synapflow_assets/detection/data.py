"""Training samples for the spine detector: simulated layers and the real annotated set, with augmentation."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .model import SIMULATOR_TYPE_TO_LABEL

#: Percentiles of the robust intensity normalisation (low -> 0, high -> 1).
NORMALISATION_PERCENTILES = (1.0, 99.8)


@dataclass
class Sample:
    """One annotated layer.

    Attributes
    ----------
    image : ndarray (H, W)
        Raw intensities (any numeric dtype); normalise with ``low`` / ``high``.
    low, high : float
        Intensities mapped to 0 and 1 (robust percentiles of the whole layer).
    boxes : ndarray float32 (N, 4)
        xmin, ymin, xmax, ymax in pixels.
    labels : ndarray int64 (N,)
        Class labels (index into ``model.SPINE_TYPES``).
    name : str
        Where it comes from.
    """

    image: np.ndarray
    low: float
    high: float
    boxes: np.ndarray
    labels: np.ndarray
    name: str = ""

    def normalised(self) -> np.ndarray:
        """The image as float32 with ``low`` -> 0 and ``high`` -> 1 (clipped to [0, 1.5])."""
        return normalise(self.image, self.low, self.high)


def robust_range(image: np.ndarray) -> tuple[float, float]:
    """Robust (low, high) intensities of a layer: its 1st and 99.8th percentiles.

    Parameters
    ----------
    image : ndarray

    Returns
    -------
    (float, float)
        ``high == low`` for a constant layer.
    """
    flat = np.asarray(image, dtype=np.float32).ravel()
    if flat.size > 262_144:  # a strided subsample is plenty for percentiles
        flat = flat[:: flat.size // 262_144]
    low, high = np.percentile(flat, NORMALISATION_PERCENTILES)
    if high <= low:
        low, high = float(flat.min()), float(flat.max())
    return float(low), float(high)


def normalise(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low`` -> 0 and ``high`` -> 1, clip to [0, 1.5]; a constant layer gives zeros.

    Parameters
    ----------
    image : ndarray
    low, high : float

    Returns
    -------
    ndarray float32
    """
    image = np.asarray(image, dtype=np.float32)
    if high <= low:
        return np.zeros(image.shape, np.float32)
    return np.clip((image - low) / (high - low), 0.0, 1.5).astype(np.float32)


def make_sample(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, name: str = "") -> Sample:
    """A :class:`Sample` with its robust range computed."""
    low, high = robust_range(image)
    return Sample(image, low, high, np.asarray(boxes, np.float32).reshape(-1, 4),
                  np.asarray(labels, np.int64).reshape(-1), name)


# ---------------------------------------------------------------- simulated layers

def simulated_samples(n_animals: int, seed: int, size: int = 256, layers: int = 16,
                      n_sessions: int = 1, keep_empty: bool = False) -> list[Sample]:
    """Layers of simulated sessions with their ground-truth boxes in the registered frame.

    Parameters
    ----------
    n_animals : int
        Animals simulated (seeds ``seed``, ``seed + 1``, ...).
    seed : int
    size : int
        Pixels per side of a layer.
    layers : int
        Layers per session.
    n_sessions : int
        Sessions per animal.
    keep_empty : bool
        Keep layers without spines.

    Returns
    -------
    list of Sample
    """
    from ..synthetic import SimulationParams, simulate_animal

    params = SimulationParams(shape=(layers, size, size))
    samples = []
    for animal in range(n_animals):
        for session in simulate_animal(params, n_sessions, seed + animal):
            samples.extend(session_samples(session, f"sim{seed + animal}s{session.index}", keep_empty))
    return samples


def session_samples(session, name: str = "sim", keep_empty: bool = False) -> list[Sample]:
    """Per-layer samples of one ``SimulatedSession``; boxes moved by the layer's jitter.

    Parameters
    ----------
    session : synapflow_assets.synthetic.SimulatedSession
    name : str
    keep_empty : bool

    Returns
    -------
    list of Sample
    """
    table = session.boxes
    layer_col = table["layer"].to_numpy()
    xyxy = table.select("xmin", "ymin", "xmax", "ymax").to_numpy().astype(np.float32)
    labels = np.array([SIMULATOR_TYPE_TO_LABEL[t] for t in table["type"].to_list()], np.int64)
    shifts = np.asarray(session.layer_shifts, np.float32)
    samples = []
    for z, layer in enumerate(session.volume):
        pick = layer_col == z
        if not pick.any() and not keep_empty:
            continue
        dy, dx = shifts[z] if len(shifts) > z else (0.0, 0.0)
        boxes = xyxy[pick] + np.array([dx, dy, dx, dy], np.float32)
        h, w = layer.shape
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        samples.append(make_sample(layer, boxes, labels[pick], f"{name}z{z}"))
    return samples


# ---------------------------------------------------------------- real annotated set

def shared_data_root() -> Path:
    """``$SYNAPFLOW_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("SYNAPFLOW_SHARED_DATA")
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
    boxes = np.clip(np.array(boxes, np.float32).reshape(-1, 4), 0, [width, height, width, height])
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep].astype(np.float32), np.array(labels, np.int64)[keep]


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
        boxes, labels = read_yolo_labels(labels_file, w, h) if labels_file.exists() else (
            np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        samples.append(make_sample(image, boxes, labels, png.name))
    return samples


# ---------------------------------------------------------------- augmentation

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


def augment(sample: Sample, crop: int, rng: np.random.Generator, params: AugmentParams = AugmentParams()
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
    if params.spine_size is not None and len(sample.boxes):
        sizes = np.sqrt(np.prod(np.clip(sample.boxes[:, 2:] - sample.boxes[:, :2], 1.0, None), axis=1))
        target = float(np.exp(rng.uniform(*np.log(params.spine_size))))
        scale = float(np.clip(target / np.median(sizes), 1 / params.max_scale, params.max_scale))
    src = crop / scale  # source window size
    if len(sample.boxes) and rng.random() < params.spine_bias:
        box = sample.boxes[rng.integers(len(sample.boxes))]
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
        window[ya - y0: yb - y0, xa - x0: xb - x0] = normalise(sample.image[ya:yb, xa:xb], sample.low, sample.high)
    image = window
    if s != crop:
        image = F.interpolate(torch.from_numpy(window)[None, None], size=(crop, crop), mode="bilinear",
                              align_corners=False)[0, 0].numpy()
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
    for b, l in zip(boxes, labels):
        b = torch.as_tensor(np.asarray(b, np.float32)).reshape(-1, 4)
        cxcywh = torch.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                              (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], 1)
        targets.append({"class_labels": torch.as_tensor(l, dtype=torch.long), "boxes": cxcywh.clamp(0, 1)})
    return targets


def make_batch(pool: list[Sample], batch_size: int, crop: int, rng: np.random.Generator,
               params: AugmentParams = AugmentParams()) -> tuple[torch.Tensor, list[dict]]:
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
