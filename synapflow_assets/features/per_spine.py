"""All per-spine features of one session in one table."""

from collections.abc import Sequence

import numpy as np
import polars as pl

from .dendrite import along_dendrite as _along_dendrite
from .dendrite import session_density
from .distance import layer_distances, spine_distances
from .head_shape import PSF_SIGMA_UM, spine_morphology
from .operators import combine_layers
from .shape_type import assign_types
from .size import layer_sizes

FEATURE_COLUMNS = [
    "spine_id",
    "x_um",
    "y_um",
    "z_um",
    "size",
    "size_n_layers",
    "head_to_dendrite_um",
    "head_to_dendrite_px",
    "distance_reason",
    "distance_n_layers",
    "head_width_um",
    "head_diameter_um",
    "head_diameter_fwhm_um",
    "neck_length_um",
    "head_volume_um3",
    "size_shaft_um",
    "shaft_diameter_um",
    "type",
    "type_source",
    "peak_intensity",
    "dendrite_brightness",
]
MORPHOLOGY_COLUMNS = [
    "head_diameter_um",
    "head_diameter_fwhm_um",
    "neck_length_um",
    "head_volume_um3",
    "size_shaft_um",
    "shaft_diameter_um",
]
#: Unit and meaning of every column of :data:`FEATURE_COLUMNS` (and :data:`ALONG_DENDRITE_COLUMNS`).
FEATURE_UNITS = {
    "spine_id": ("", "spine id of the session"),
    "x_um": ("um", "head centre x"),
    "y_um": ("um", "head centre y"),
    "z_um": ("um", "head centre z"),
    "size": ("1", "integrated fluorescence / dendrite brightness (SynapFlow recipe)"),
    "size_n_layers": ("layers", "layers with a size"),
    "head_to_dendrite_um": ("um", "head centre to junction with the dendrite"),
    "head_to_dendrite_px": ("px", "head centre to junction with the dendrite"),
    "distance_reason": ("", "ok or why the head or junction was not found"),
    "distance_n_layers": ("layers", "layers with a distance"),
    "head_width_um": ("um", "diameter of the disc of the head's half-maximum area"),
    "head_diameter_um": ("um", "geometric mean of head_diameter_fwhm_um and the head volume's sphere diameter"),
    "head_diameter_fwhm_um": ("um", "head FWHM across the spine axis, PSF-corrected"),
    "neck_length_um": ("um", "neck path from head to dendrite, less the head radius"),
    "head_volume_um3": ("um^3", "head fluorescence / local shaft fluorescence per um x shaft cross-section"),
    "size_shaft_um": ("um", "head fluorescence in um of local dendrite shaft"),
    "shaft_diameter_um": ("um", "local dendrite shaft FWHM, PSF-corrected"),
    "type": ("", "spine type"),
    "type_source": ("", "detector, shape or none"),
    "peak_intensity": ("counts", "brightest box pixel"),
    "dendrite_brightness": ("counts", "mean of the brightest 1 % of the grown box"),
    "dendrite_position_um": ("um", "arc length along the dendrite skeleton"),
    "dendrite_component": ("", "dendrite skeleton component"),
}
#: Optional columns added by ``spine_features(..., along_dendrite=True)``.
ALONG_DENDRITE_COLUMNS = ["dendrite_position_um", "dendrite_component"]


def spine_features(
    volume: np.ndarray,
    linked_boxes: pl.DataFrame,
    spines: pl.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    size_operator: str = "median",
    distance_operator: str = "median",
    size_centre: str = "head",
    along_dendrite: bool = False,
    psf_sigma_um: tuple[float, float] = PSF_SIGMA_UM,
) -> pl.DataFrame:
    """Features of every 3D spine of a session.

    Parameters
    ----------
    volume : ndarray (z, y, x)
        Registered volume in the boxes' frame.
    linked_boxes : polars.DataFrame
        ``id`` (-1 = not a spine, ignored), ``layer``, ``xmin, ymin, xmax, ymax``
        (px); optional ``type`` (detector class, nullable).
    spines : polars.DataFrame
        3D spine summaries (``spine_id``, ``x_um, y_um, z_um``, ``type``, ...).
    voxel_size_um : (z, y, x)
    size_operator, distance_operator : {"median", "mean", "max", "inlier_median"}
        How per-layer values become one value per spine.
    size_centre : {"head", "box"}
        Centre of the size recipe's Gaussian weight on each layer: the head
        found there by :mod:`.distance` (default; the box centre where no head
        was found), or the box centre (the literal recipe). See :mod:`.size`.
    along_dendrite : bool
        Also give each spine its position along the dendrite skeleton of the
        session's MIP (:func:`.dendrite.along_dendrite`): the columns
        :data:`ALONG_DENDRITE_COLUMNS`, ``dendrite_position_um`` (arc length in
        um from one end of the skeleton component, NaN without skeleton) and
        ``dendrite_component`` (skeleton component, 0 when none; positions are
        comparable within one component only). The point placed on the skeleton
        is the spine's junction with the dendrite (median over the layers where
        it was found), else its centre.
    psf_sigma_um : (float, float)
        Gaussian PSF sigma (z, x/y) in um, for the morphology
        (:func:`.head_shape.spine_morphology`).

    Returns
    -------
    polars.DataFrame
        One row per ``spines.spine_id``, columns :data:`FEATURE_COLUMNS`:
        position (um), ``size`` (integrated fluorescence / dendrite brightness,
        :mod:`.size`) and the number of layers it was measured on,
        ``head_to_dendrite_um`` / ``_px`` with ``distance_reason`` and
        ``distance_n_layers`` (:mod:`.distance`), ``head_width_um``, ``type``
        and ``type_source`` (:mod:`.shape_type`), ``peak_intensity`` (brightest
        box pixel over the layers) and ``dendrite_brightness`` (median over the
        layers of the mean of the brightest 1 % of the grown box); the
        morphology of :func:`.head_shape.spine_morphology`:
        ``head_diameter_um``, ``head_diameter_fwhm_um``, ``neck_length_um``, ``head_volume_um3``,
        ``size_shaft_um`` and ``shaft_diameter_um``. Units: :data:`FEATURE_UNITS`.
    """
    boxes = linked_boxes.filter(pl.col("id") >= 0).select("id", "layer", "xmin", "ymin", "xmax", "ymax")
    boxes = boxes.filter(pl.col("id").is_in(spines["spine_id"].implode()))
    dist = layer_distances(volume, boxes, voxel_size_um)
    sized = _layer_sizes(volume, boxes, dist, size_centre)
    px_um = float(np.mean(voxel_size_um[1:]))
    dist = dist.with_columns(head_width_um=2 * (pl.col("head_area_px") / np.pi).sqrt() * px_um)
    per = (
        combine_layers(sized, "size", size_operator)
        .join(
            sized.group_by("id").agg(
                size_n_layers=pl.col("size").is_finite().sum().cast(pl.Int64),
                peak_intensity=pl.col("peak_intensity").max(),
                dendrite_brightness=pl.col("dendrite_brightness").median(),
            ),
            on="id",
        )
        .join(
            combine_layers(dist.filter(pl.col("distance_reason") == "ok"), "head_width_um", "median"),
            on="id",
            how="left",
        )
        .rename({"id": "spine_id"})
        .join(spine_distances(dist, distance_operator), on="spine_id", how="left")
        .join(
            spine_morphology(
                volume, dist.with_columns(background=sized["background"]), voxel_size_um, psf_sigma_um=psf_sigma_um
            ),
            on="spine_id",
            how="left",
        )
    )
    out = spines.select(
        "spine_id",
        "x_um",
        "y_um",
        "z_um",
        pl.col("type").alias("detector_type")
        if "type" in spines.columns
        else pl.lit(None, pl.String).alias("detector_type"),
    ).join(per, on="spine_id", how="left")
    types = assign_types(
        out["detector_type"],
        out["head_width_um"].fill_null(np.nan).to_numpy(),
        out["head_to_dendrite_um"].fill_null(np.nan).to_numpy(),
    )
    out = pl.concat([out, types], how="horizontal").with_columns(
        pl.col("distance_reason").fill_null("no_boxes"),
        pl.col("size_n_layers").fill_null(0),
        pl.col("distance_n_layers").fill_null(0),
        pl.col(
            "size",
            "head_to_dendrite_um",
            "head_to_dendrite_px",
            "head_width_um",
            *MORPHOLOGY_COLUMNS,
            "peak_intensity",
            "dendrite_brightness",
        )
        .cast(pl.Float64)
        .fill_null(np.nan),
    )
    columns = list(FEATURE_COLUMNS)
    if along_dendrite:
        out = _with_dendrite_position(out.sort("spine_id"), dist, volume, voxel_size_um)
        columns += ALONG_DENDRITE_COLUMNS
    return out.select(columns).sort("spine_id")


__all__ = ["ALONG_DENDRITE_COLUMNS", "FEATURE_COLUMNS", "FEATURE_UNITS", "session_density", "spine_features"]


def _layer_sizes(volume: np.ndarray, boxes: pl.DataFrame, dist: pl.DataFrame, size_centre: str) -> pl.DataFrame:
    """Size of every box on its layer, its Gaussian weight centred on the head found there (`head`, the box
    centre where none was found) or on the box centre (`box`)."""
    if size_centre == "box":
        return layer_sizes(volume, boxes)
    if size_centre != "head":
        raise ValueError(f"size_centre must be 'head' or 'box', not {size_centre!r}")
    found = pl.col("distance_reason") == "ok"
    return layer_sizes(
        volume,
        dist.select(
            "id",
            "layer",
            "xmin",
            "ymin",
            "xmax",
            "ymax",
            gy=pl.when(found).then(pl.col("head_y")),
            gx=pl.when(found).then(pl.col("head_x")),
        ),
        centre=("gy", "gx"),
    )


def _with_dendrite_position(
    out: pl.DataFrame, dist: pl.DataFrame, volume: np.ndarray, voxel_size_um: Sequence[float]
) -> pl.DataFrame:
    """`out` (sorted by spine) with the :data:`ALONG_DENDRITE_COLUMNS` of each spine's junction with the dendrite
    (median over the layers where it was found), else of its centre."""
    junction = (
        dist.filter(pl.col("distance_reason") == "ok")
        .group_by("id")
        .agg(pl.col("junction_y", "junction_x").median())
        .rename({"id": "spine_id"})
    )
    pts = out.select("spine_id", "y_um", "x_um").join(junction, on="spine_id", how="left", maintain_order="left")
    y = pts["junction_y"].fill_null(np.nan).to_numpy().copy()
    x = pts["junction_x"].fill_null(np.nan).to_numpy().copy()
    none = ~(np.isfinite(y) & np.isfinite(x))
    y[none] = pts["y_um"].fill_null(np.nan).to_numpy()[none] / voxel_size_um[1]
    x[none] = pts["x_um"].fill_null(np.nan).to_numpy()[none] / voxel_size_um[2]
    pos, comp = _along_dendrite(np.asarray(volume).max(0), y, x, float(np.mean(voxel_size_um[1:])))
    return out.with_columns(
        dendrite_position_um=pl.Series(pos, dtype=pl.Float64), dendrite_component=pl.Series(comp, dtype=pl.Int64)
    )
