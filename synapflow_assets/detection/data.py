"""Training samples for the spine detector: simulated layers and the real annotated set (augmented into
batches by :mod:`.batches`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    pixel_size_um : float, optional
        Known pixel size (simulated layers); None when unknown.
    """

    image: np.ndarray
    low: float
    high: float
    boxes: np.ndarray
    labels: np.ndarray
    name: str = ""
    pixel_size_um: float | None = None

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


def make_sample(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, name: str = "", pixel_size_um: float | None = None
) -> Sample:
    """A :class:`Sample` with its robust range computed."""
    low, high = robust_range(image)
    return Sample(
        image,
        low,
        high,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64).reshape(-1),
        name,
        pixel_size_um,
    )


def resample(image: np.ndarray, zoom: float) -> np.ndarray:
    """Resize a 2D float image by ``zoom`` (bilinear, anti-aliased when shrinking); one function for
    training crops and inference so that both see the same interpolation.

    Parameters
    ----------
    image : ndarray (H, W)
    zoom : float

    Returns
    -------
    ndarray float32 (round(H * zoom), round(W * zoom))
    """
    h, w = image.shape
    size = (max(1, int(round(h * zoom))), max(1, int(round(w * zoom))))
    return resize(image, size)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2D float image to ``size`` (bilinear, anti-aliased when shrinking)."""
    import torch
    import torch.nn.functional as F

    if tuple(image.shape) == tuple(size):
        return np.asarray(image, np.float32)
    shrink = size[0] < image.shape[0] or size[1] < image.shape[1]
    tensor = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=shrink)[0, 0].numpy()


# ---------------------------------------------------------------- simulated layers


def simulated_samples(
    n_animals: int, seed: int, size: int = 256, layers: int = 16, n_sessions: int = 1, keep_empty: bool = False
) -> list[Sample]:
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
            samples.extend(
                session_samples(
                    session, f"sim{seed + animal}s{session.index}", keep_empty, pixel_size_um=params.voxel_size_um[2]
                )
            )
    return samples


def session_samples(
    session, name: str = "sim", keep_empty: bool = False, pixel_size_um: float | None = None
) -> list[Sample]:
    """Per-layer samples of one ``SimulatedSession``; boxes moved by the layer's jitter.

    Parameters
    ----------
    session : synapflow_assets.synthetic.SimulatedSession
    name : str
    keep_empty : bool
    pixel_size_um : float, optional
        The session's x/y voxel size, recorded on every sample.

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
        samples.append(make_sample(layer, boxes, labels[pick], f"{name}z{z}", pixel_size_um))
    return samples


# ---------------------------------------------------------------- real annotated set


def raw_like_samples(n: int, seed: int, params=None, *, workers: int = 1) -> list[Sample]:
    """Rendered raw two-photon layers (:mod:`synapflow_assets.synthetic.raw_layer`) with their pixel sizes.

    Parameters
    ----------
    n : int
        Layers; layer ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
    seed : int
    params : RawLayerParams, optional
    workers : int
        Processes rendering in parallel.

    Returns
    -------
    list of Sample
    """
    from concurrent.futures import ProcessPoolExecutor

    from ..synthetic.raw_layer import RawLayerParams

    params = params or RawLayerParams()
    jobs = [(seed, i, params) for i in range(n)]
    if workers > 1 and n > 4:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_raw_like_sample, jobs, chunksize=4))
    return [_raw_like_sample(job) for job in jobs]


def _raw_like_sample(job) -> Sample:
    from ..synthetic.raw_layer import render_raw_layer

    seed, i, params = job
    layer = render_raw_layer(np.random.default_rng([seed, i]), params)
    return make_sample(layer.image, layer.boxes, layer.labels, f"raw{seed}-{i}", layer.pixel_size_um)


def with_raw_background(sample: Sample, rng: np.random.Generator, params=None) -> Sample:
    """A masked annotated image (``spine2d_polygons``: background ~99% zero) made raw-like: its
    dendrites over autofluorescence, haze, axons and debris, imaged with shot noise and a bit depth.

    The pixel size is estimated from the image's dendrites, as inference does on a
    file without one, and recorded so that training zooms it like inference will.

    Parameters
    ----------
    sample : Sample
    rng : numpy.random.Generator
    params : RawLayerParams, optional

    Returns
    -------
    Sample
    """
    from scipy import ndimage

    from ..imaging.scale import estimate_pixel_size
    from ..synthetic.acquisition import acquire
    from ..synthetic.raw_layer import RawLayerParams, distractors

    params = params or RawLayerParams()
    pixel = estimate_pixel_size(sample.image).pixel_size_um or 0.12
    signal = ndimage.gaussian_filter(np.clip(sample.normalised(), 0.0, 1.2), rng.uniform(0.5, 1.0))
    loose, haze = distractors(rng, signal.shape, pixel, params)
    loose = ndimage.gaussian_filter(loose, rng.uniform(0.12, 0.3) / pixel)
    image = acquire(np.maximum(signal, loose) + haze, rng, params, pixel)
    return make_sample(image, sample.boxes, sample.labels, sample.name + "+raw", pixel)
