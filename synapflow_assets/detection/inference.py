"""Run a trained spine detector on layers and stacks (tiled, batched); saved and loaded through
:mod:`.detector_files`."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from ..geometry import BOX_SCHEMA, centres
from ..imaging.scale import estimate_pixel_size
from ..setting_sections import DEFAULT_SCORE_THRESHOLD
from .box_merge import TileOutput, merge_tiles, tile_origins
from .data import normalise, resample, robust_range
from .detector_files import CONFIG_FORMAT, read_detector_files, write_detector_files
from .model import DetectorSpec
from .view_fusion import check_views, predict_in_views

STACK_CONTRAST_FRACTION = 0.5


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_array(array: np.ndarray, ndim: int, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {array.shape}")
    if array.dtype == bool or array.dtype.kind not in "uif":
        raise ValueError(f"{what} has unsupported dtype {array.dtype} (expected an integer or float type)")
    if min(array.shape) == 0:
        raise ValueError(f"{what} is empty (shape {array.shape})")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


class SpineDetector:
    """A trained RT-DETR spine detector with its pre- and post-processing.

    Parameters
    ----------
    model : transformers.RTDetrForObjectDetection
    spec : DetectorSpec
    tile : int
        Tile size in pixels; larger layers are tiled.
    overlap : int
        Overlap of neighbouring tiles (larger than the biggest spine).
    nms_iou : float
        IoU of the class-agnostic NMS merging tiles.
    device : torch.device, optional
        Defaults to CUDA when available, else CPU.
    upscale : float
        Extra test-time zoom on top of the pixel-size resampling (1 = none).
    pixel_size_um : float, optional
        Pixel size (um/px) the model was trained at. Each layer is resampled
        from its own pixel size (given, or estimated from its dendrites by
        :func:`synapflow_assets.imaging.scale.estimate_pixel_size`) to this
        one, and the boxes are mapped back to the layer's pixels. None (older
        models): layers are used as they are.
    box_scale : float
        Every box is scaled about its centre by this factor (a per-model,
        per-domain box-size calibration, see :mod:`.calibration`). 1 = off.
    views : tuple of str
        Test-time views of each tile (:data:`.view_fusion.VIEWS`, starting with
        ``none``); with more than one, their boxes are fused
        (:func:`.view_fusion.fuse_views`) and each costs one more pass.

    Attributes
    ----------
    types : list of str
        Class names, index = label.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        spec: DetectorSpec,
        tile: int = 512,
        overlap: int = 64,
        nms_iou: float = 0.5,
        device: torch.device | str | None = None,
        upscale: float = 1.0,
        box_scale: float = 1.0,
        pixel_size_um: float | None = None,
        views: tuple[str, ...] = ("none",),
    ):
        self.spec = spec
        self.types = list(spec.types)
        self.tile = int(tile)
        self.overlap = int(overlap)
        self.nms_iou = float(nms_iou)
        self.upscale = _positive(upscale, "upscale")
        self.box_scale = _positive(box_scale, "box_scale")
        self.pixel_size_um = None if pixel_size_um is None else _positive(pixel_size_um, "pixel_size_um")
        self.views = check_views(views)
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device).eval()

    def set_options(
        self,
        upscale: float | None = None,
        box_scale: float | None = None,
        tile: int | None = None,
        views: tuple[str, ...] | None = None,
    ) -> SpineDetector:
        """Override ``upscale``, ``box_scale``, ``tile`` and / or ``views`` (None keeps the current value);
        returns self.

        The model's boxes are sized relative to its input, so a tile much larger
        than the training crops gives boxes too large by about their ratio
        (the shipped model, trained on 256-320 px crops, draws ~2x too large
        boxes on 512 px tiles); ``tile`` near the training crop fixes that.

        Raises
        ------
        ValueError
            When a value is not a positive number (``tile``: not larger than the overlap).
        """
        if tile is not None:
            if int(tile) <= self.overlap:
                raise ValueError(f"tile must be larger than the overlap ({self.overlap} px), got {tile}")
            self.tile = int(tile)
        if upscale is not None:
            self.upscale = _positive(upscale, "upscale")
        if box_scale is not None:
            self.box_scale = _positive(box_scale, "box_scale")
        if views is not None:
            self.views = check_views(views)
        return self

    # ------------------------------------------------------------ persistence
    def config(self) -> dict:
        """The JSON config saved beside the weights."""
        return {
            "format": CONFIG_FORMAT,
            "version": 1,
            "spec": self.spec.to_dict(),
            "inference": {
                "tile": self.tile,
                "overlap": self.overlap,
                "nms_iou": self.nms_iou,
                "upscale": self.upscale,
                "box_scale": self.box_scale,
                "pixel_size_um": self.pixel_size_um,
                "views": list(self.views),
            },
        }

    def save(self, folder) -> None:
        """Write ``model.safetensors`` and ``config.json`` into ``folder`` (created if needed).

        Parameters
        ----------
        folder : path-like
        """
        write_detector_files(folder, self.model, self.config())

    @classmethod
    def load(cls, folder, device: torch.device | str | None = None) -> SpineDetector:
        """Load a detector saved by :meth:`save` (safetensors only, nothing is unpickled).

        Parameters
        ----------
        folder : path-like
            Holds ``model.safetensors`` and ``config.json``.
        device : torch.device or str, optional

        Returns
        -------
        SpineDetector

        Raises
        ------
        DetectorError
            Naming the file: missing folder or file, unreadable JSON, an unknown
            config, corrupt weights or weights that do not fit the config.
        """
        model, spec, options = read_detector_files(folder)
        return cls(
            model,
            spec,
            tile=options.get("tile", 512),
            overlap=options.get("overlap", 64),
            nms_iou=options.get("nms_iou", 0.5),
            device=device,
            upscale=options.get("upscale", 1.0),
            box_scale=options.get("box_scale", 1.0),
            pixel_size_um=options.get("pixel_size_um"),
            views=tuple(options.get("views", ("none",))),
        )

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def _predict_tiles(self, tiles: list[np.ndarray], score_threshold: float) -> list[tuple]:
        """Boxes (tile px), class-agnostic scores and labels of equally sized normalised tiles, fused over
        ``views`` (:func:`.view_fusion.predict_in_views`)."""
        if len(self.views) == 1:
            return self._predict_batch(tiles, score_threshold)
        return predict_in_views(
            self._predict_batch, tiles, self.views, score_threshold=score_threshold, iou_threshold=self.nms_iou
        )

    def _predict_batch(self, tiles: list[np.ndarray], score_threshold: float) -> list[tuple]:
        h, w = tiles[0].shape
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32  # pad to a multiple of the largest stride
        batch = np.zeros((len(tiles), ph, pw), np.float32)
        for i, t in enumerate(tiles):
            batch[i, :h, :w] = t
        pixels = torch.from_numpy(batch).to(self.device)[:, None].expand(-1, 3, -1, -1)
        out = self.model(pixel_values=pixels)
        probs = out.logits.sigmoid().float()
        scores, labels = probs.max(-1)
        cx, cy, bw, bh = out.pred_boxes.float().unbind(-1)
        boxes = torch.stack([(cx - bw / 2) * pw, (cy - bh / 2) * ph, (cx + bw / 2) * pw, (cy + bh / 2) * ph], -1)
        results = []
        for b in range(len(tiles)):
            keep = scores[b] >= score_threshold
            results.append((boxes[b][keep].cpu().numpy(), scores[b][keep].cpu().numpy(), labels[b][keep].cpu().numpy()))
        return results

    def _tiles_of(self, layer: np.ndarray):
        h, w = layer.shape
        th, tw = min(self.tile, h), min(self.tile, w)
        for y0 in tile_origins(h, self.tile, self.overlap):
            for x0 in tile_origins(w, self.tile, self.overlap):
                yield y0, x0, th, tw

    def zoom_for(self, pixel_size_um: float | None) -> float:
        """The factor a layer of ``pixel_size_um`` is resized by before inference (``upscale`` included)."""
        if self.pixel_size_um is None or pixel_size_um is None:
            return self.upscale
        return self.upscale * float(pixel_size_um) / self.pixel_size_um

    def layer_pixel_size(self, layer: np.ndarray, pixel_size_um: float | None) -> float | None:
        """``pixel_size_um`` when given, else the estimate from the layer's (or stack's) dendrites."""
        if pixel_size_um is not None:
            return _positive(pixel_size_um, "pixel_size_um")
        if self.pixel_size_um is None:
            return None
        return estimate_pixel_size(layer).pixel_size_um

    def _detect_layers(
        self,
        layers: list[np.ndarray],
        score_threshold: float,
        batch_size: int,
        min_contrast: float = 0.0,
        zoom: float = 1.0,
    ) -> list[pl.DataFrame]:
        """``min_contrast`` is the smallest (high - low) a layer is stretched to, so that a layer of
        pure background in a stack is not stretched into spine-like noise; ``zoom`` resizes each layer."""
        jobs, outputs = [], []  # (layer index, y0, x0, th, tw, normalised tile)
        empty = [False] * len(layers)
        normalised = []
        for i, layer in enumerate(layers):
            low, high = robust_range(layer)
            high = max(high, low + min_contrast) if high > low else high
            empty[i] = high <= low
            image = None if empty[i] else normalise(layer, low, high)
            if image is not None and zoom != 1.0:
                image = resample(image, zoom)
            normalised.append(image)
        for i, image in enumerate(normalised):
            if image is None:
                continue
            for y0, x0, th, tw in self._tiles_of(image):
                jobs.append((i, y0, x0, th, tw, image[y0 : y0 + th, x0 : x0 + tw]))
        # batch tiles of equal size together
        by_size: dict[tuple[int, int], list[int]] = {}
        for j, job in enumerate(jobs):
            by_size.setdefault(job[5].shape, []).append(j)
        results: dict[int, tuple] = {}
        for indices in by_size.values():
            for start in range(0, len(indices), max(1, batch_size)):
                chunk = indices[start : start + max(1, batch_size)]
                for j, result in zip(
                    chunk, self._predict_tiles([jobs[j][5] for j in chunk], score_threshold), strict=False
                ):
                    results[j] = result
        per_layer: list[list[TileOutput]] = [[] for _ in layers]
        for j, (i, y0, x0, th, tw, _) in enumerate(jobs):
            boxes, scores, labels = results[j]
            per_layer[i].append(TileOutput(y0, x0, th, tw, boxes, scores, labels))
        for i, layer in enumerate(layers):
            if empty[i] or not per_layer[i]:
                outputs.append(pl.DataFrame(schema=BOX_SCHEMA))
                continue
            tile_source = normalised[i]
            assert tile_source is not None  # not empty, so normalised
            boxes, scores, labels = merge_tiles(per_layer[i], tile_source.shape, self.nms_iou)
            boxes = self._rescale(boxes, layer.shape, tile_source.shape)
            outputs.append(
                pl.DataFrame(
                    {
                        "xmin": boxes[:, 0],
                        "ymin": boxes[:, 1],
                        "xmax": boxes[:, 2],
                        "ymax": boxes[:, 3],
                        "score": scores,
                        "type": [self.types[int(k)] for k in labels],
                    },
                    schema=BOX_SCHEMA,
                )
            )
        return outputs

    def _rescale(self, boxes: np.ndarray, shape: tuple[int, int], zoomed: tuple[int, int]) -> np.ndarray:
        """Boxes of the zoomed layer in layer pixels, scaled about their centres by ``box_scale``."""
        if zoomed == tuple(shape) and self.box_scale == 1.0:
            return boxes
        factor = np.array([zoomed[1] / shape[1], zoomed[0] / shape[0]] * 2, np.float64)
        boxes = np.asarray(boxes, np.float64) / factor
        centre, half = centres(boxes), (boxes[:, 2:] - boxes[:, :2]) * self.box_scale / 2
        limit = np.array([shape[1], shape[0]], np.float64)
        return np.concatenate([np.clip(centre - half, 0, limit), np.clip(centre + half, 0, limit)], 1)

    def detect_layer(
        self, layer: np.ndarray, score_threshold: float = DEFAULT_SCORE_THRESHOLD, *, pixel_size_um: float | None = None
    ) -> pl.DataFrame:
        """Detect spines on one 2D layer.

        Parameters
        ----------
        layer : ndarray (H, W)
            Any integer or float dtype; any size (large layers are tiled).
        score_threshold : float
            Minimal class-agnostic score.
        pixel_size_um : float, optional
            The layer's pixel size; estimated from the layer when None.

        Returns
        -------
        polars.DataFrame
            ``xmin, ymin, xmax, ymax`` (float, layer pixels, clipped to the
            layer), ``score`` (max over classes), ``type`` (class name), by
            decreasing score. An empty or constant layer gives no rows.

        Raises
        ------
        ValueError
            When the layer is not 2D, empty, of a non-numeric dtype or not finite.
        """
        layer = _check_array(layer, 2, "layer")
        zoom = self.zoom_for(self.layer_pixel_size(layer, pixel_size_um))
        return self._detect_layers([layer], score_threshold, 1, zoom=zoom)[0]

    def detect_stack(
        self,
        stack: np.ndarray,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        batch_size: int = 4,
        *,
        pixel_size_um: float | None = None,
        progress=None,
    ) -> pl.DataFrame:
        """Detect spines on every layer of a (z, y, x) stack, tiles batched.

        Parameters
        ----------
        stack : ndarray (Z, H, W)
        score_threshold : float
        batch_size : int
            Tiles per forward pass.
        pixel_size_um : float, optional
            The stack's x/y pixel size; estimated from its projection when None.
        progress : callable, optional
            Called as ``progress(layers_done, layers_total, boxes_so_far)`` after each batch of layers.

        Each layer is normalised by its own robust range, but stretched at
        most as if its contrast were ``STACK_CONTRAST_FRACTION`` of the
        stack's, so layers of background (above or below the dendrites) stay
        dark instead of turning noise into spines.

        Returns
        -------
        polars.DataFrame
            ``layer`` (int) then the columns of :meth:`detect_layer`.

        Raises
        ------
        ValueError
            When the stack is not 3D, empty, of a non-numeric dtype or not finite.
        """
        stack = _check_array(stack, 3, "stack")
        stack_low, stack_high = robust_range(stack)
        min_contrast = STACK_CONTRAST_FRACTION * (stack_high - stack_low)
        zoom = self.zoom_for(self.layer_pixel_size(stack, pixel_size_um))
        frames = []
        chunk = max(1, batch_size)
        for start in range(0, len(stack), chunk):
            layers = [stack[z] for z in range(start, min(start + chunk, len(stack)))]
            for offset, frame in enumerate(
                self._detect_layers(layers, score_threshold, batch_size, min_contrast, zoom)
            ):
                frames.append(frame.with_columns(pl.lit(start + offset, pl.Int64).alias("layer")))
            if progress is not None:
                progress(start + len(layers), len(stack), sum(len(f) for f in frames))
        if not frames:
            return pl.DataFrame(schema={"layer": pl.Int64, **BOX_SCHEMA})
        return pl.concat(frames).select("layer", *BOX_SCHEMA)


def _positive(value, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value
