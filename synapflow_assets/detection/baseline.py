"""Classical baseline: Laplacian-of-Gaussian blob detection with scipy and scikit-image (no dagster).

For comparison with the transformer detector in the benchmark, and selectable
by configuration; it is never used silently in place of the model.

Method
------
The layer is normalised robustly (percentiles ``p_low`` / ``p_high`` to 0 / 1,
clipped), then filtered with the scale-normalised LoG ``-sigma**2 *
LoG_sigma`` at every ``sigmas`` (pixels). A bright Gaussian blob of
amplitude ``A`` (normalised units) and width ``s`` gives ``A / 2`` at
``sigma = s``. Candidates are the local maxima in space and scale (3 x 3 x 3
neighbourhood, ``skimage.feature.peak_local_max``) whose response exceeds the
threshold; maxima on elongated structures (dendrite shafts) are rejected with
the Hessian ratio test of Lowe (2004) when ``edge_ratio`` is set. Overlapping
candidates are thinned by box non-maximum suppression
(:func:`synapflow_assets.geometry.nms`). A blob of scale ``sigma`` gets a
square box of side ``2 * sqrt(2) * sigma`` (its LoG zero-crossing diameter)
around its centre. ``skimage.feature.blob_log`` is not used: it takes only
evenly spaced scales, has no edge test and prunes by circle overlap.

Score: ``response / (response + threshold)``, monotone in the response and
0.5 at the threshold, so ``score_threshold=0.5`` applies the detector's own
threshold and a lower one returns weaker candidates (as needed for AP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import ndimage
from skimage.feature import peak_local_max

from ..geometry import BOX_SCHEMA, nms

MODEL_NAME = "log-baseline"
CODE_VERSION = "1"
"""Version of the baseline's method and defaults; recorded as the model version of its detections."""
OWN_THRESHOLD_SCORE = 0.5
"""The score at the detector's own response threshold."""


@dataclass(frozen=True)
class LogBlobDetector:
    """Multi-scale Laplacian-of-Gaussian spine detector.

    Parameters
    ----------
    sigmas : tuple of float
        LoG scales in pixels (a spine head of radius r px peaks near
        ``sigma = r / sqrt(2)``); the defaults cover heads of about 2-8 px.
    threshold : float
        Minimum scale-normalised LoG response in normalised intensity units
        (a blob of amplitude A responds with about A / 2).
    p_low, p_high : float
        Percentiles mapped to 0 and 1 before filtering.
    edge_ratio : float or None
        Reject maxima whose Hessian eigenvalue ratio exceeds this (ridges,
        such as dendrite shafts); None keeps all maxima.
    nms_iou : float
        Candidates overlapping a stronger one by more than this IoU are dropped.
    spine_type : str or None
        Type reported for every box ("spine"; the baseline does not classify).
    """

    sigmas: tuple[float, ...] = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
    threshold: float = 0.1
    p_low: float = 1.0
    p_high: float = 99.8
    edge_ratio: float | None = 10.0
    nms_iou: float = 0.3
    spine_type: str | None = "spine"

    def __post_init__(self):
        if not self.sigmas or min(self.sigmas) <= 0:
            raise ValueError(f"sigmas must be positive pixels, got {self.sigmas}")
        if self.threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if not 0 <= self.p_low < self.p_high <= 100:
            raise ValueError(f"need 0 <= p_low < p_high <= 100, got {self.p_low}, {self.p_high}")

    @property
    def types(self) -> list[str]:
        """Class names reported (one, or none)."""
        return [self.spine_type] if self.spine_type is not None else []

    def normalise(self, layer: np.ndarray) -> np.ndarray:
        """Percentile-normalised float32 copy of a layer (all zeros if it is flat)."""
        layer = np.asarray(layer, dtype=np.float32)
        finite = np.isfinite(layer)
        if not finite.any():
            return np.zeros(layer.shape, np.float32)
        lo, hi = np.percentile(layer[finite], [self.p_low, self.p_high])
        if hi <= lo:
            return np.zeros(layer.shape, np.float32)
        return np.clip((np.where(finite, layer, lo) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)

    def response(self, layer: np.ndarray) -> np.ndarray:
        """Scale-normalised negative LoG of the normalised layer, float64, shape (n_sigmas, y, x)."""
        return self._scale_space(self.normalise(_check_layer(layer)))

    def _scale_space(self, image: np.ndarray) -> np.ndarray:
        return np.stack(
            [-(s**2) * ndimage.gaussian_laplace(image, s, mode="reflect") for s in np.asarray(self.sigmas, float)]
        )

    def detect_layer(self, layer: np.ndarray, score_threshold: float = 0.5) -> pl.DataFrame:
        """Detect bright blobs on one 2D layer.

        Parameters
        ----------
        layer : numpy.ndarray, shape (y, x)
            Any real dtype.
        score_threshold : float
            Minimum score in (0, 1); 0.5 is the detector's ``threshold``.

        Returns
        -------
        polars.DataFrame
            ``xmin, ymin, xmax, ymax`` (pixels, clipped to the layer),
            ``score``, ``type``; sorted by decreasing score. A flat layer
            gives no rows.
        """
        if not 0 < score_threshold < 1:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        layer = _check_layer(layer)
        image = self.normalise(layer)
        sigmas = np.asarray(self.sigmas, float)
        resp = self._scale_space(image)
        cut = self.threshold * score_threshold / (1 - score_threshold)
        k, y, x = peak_local_max(resp, footprint=np.ones((3, 3, 3), bool), threshold_abs=cut, exclude_border=False).T
        value = resp[k, y, x]
        if self.edge_ratio is not None and len(k):
            keep = np.zeros(len(k), bool)
            for level in np.unique(k):
                at = k == level
                keep[at] = _not_ridge(image, sigmas[level], y[at], x[at], self.edge_ratio)
            k, y, x, value = k[keep], y[keep], x[keep], value[keep]
        half = np.sqrt(2) * sigmas[k]
        ny, nx = layer.shape
        boxes = np.stack(
            [np.clip(x - half, 0, nx), np.clip(y - half, 0, ny), np.clip(x + half, 0, nx), np.clip(y + half, 0, ny)],
            axis=1,
        ).reshape(-1, 4)
        keep = nms(boxes, value, iou_threshold=self.nms_iou)  # by decreasing response
        boxes, value = boxes[keep], value[keep]
        return pl.DataFrame(
            {
                "xmin": boxes[:, 0],
                "ymin": boxes[:, 1],
                "xmax": boxes[:, 2],
                "ymax": boxes[:, 3],
                "score": value / (value + self.threshold),
                "type": [self.spine_type] * len(value),
            },
            schema=BOX_SCHEMA,
        )

    def detect_stack(self, stack: np.ndarray, score_threshold: float = 0.5) -> pl.DataFrame:
        """Detect on every layer of a (z, y, x) stack.

        Returns
        -------
        polars.DataFrame
            ``layer`` (int) plus the columns of :meth:`detect_layer`.
        """
        stack = np.asarray(stack)
        if stack.ndim != 3:
            raise ValueError(f"expected a 3D stack (z, y, x), got shape {stack.shape}")
        tables = [
            self.detect_layer(layer, score_threshold).with_columns(layer=pl.lit(z, pl.Int64))
            for z, layer in enumerate(stack)
        ]
        if not tables:
            return pl.DataFrame(schema={"layer": pl.Int64, **BOX_SCHEMA})
        return pl.concat(tables).select("layer", *BOX_SCHEMA)


def _check_layer(layer) -> np.ndarray:
    layer = np.asarray(layer)
    if layer.ndim != 2:
        raise ValueError(f"expected a 2D layer (y, x), got shape {layer.shape}")
    if not (np.issubdtype(layer.dtype, np.integer) or np.issubdtype(layer.dtype, np.floating) or layer.dtype == bool):
        raise ValueError(f"expected a real-valued layer, got dtype {layer.dtype}")
    if min(layer.shape) < 3:
        raise ValueError(f"layer too small for blob detection: shape {layer.shape}")
    return layer


def _not_ridge(image: np.ndarray, sigma: float, y: np.ndarray, x: np.ndarray, ratio: float) -> np.ndarray:
    """Lowe's edge test on the Gaussian-smoothed Hessian at scale ``sigma``."""
    hyy = ndimage.gaussian_filter(image, sigma, order=(2, 0))[y, x]
    hxx = ndimage.gaussian_filter(image, sigma, order=(0, 2))[y, x]
    hxy = ndimage.gaussian_filter(image, sigma, order=(1, 1))[y, x]
    trace, det = hxx + hyy, hxx * hyy - hxy**2
    return (det > 0) & (trace**2 * ratio < (ratio + 1) ** 2 * det)
