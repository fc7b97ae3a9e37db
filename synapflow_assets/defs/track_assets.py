"""Asset `spine_tracks`: every spine of an animal with one identity across its sessions."""

import itertools
from functools import partial
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from ..failpoints import failpoint
from ..imaging.animal_scale import SAME_SIZE_TOLERANCE, same_size
from ..imaging.keys import order_sessions
from ..imaging.ome_zarr import read_mip, read_volume_info, read_volume_zarr
from ..imaging.overlay import two_session_png
from ..imaging.readers import content_hash
from ..store.locations import picture_path, read_parquet, remove_file, write_parquet
from ..tracking.consensus import with_consensus
from ..tracking.evidence import EvidenceParams
from ..tracking.incremental import AnimalTracker, SessionInput
from ..tracking.redetection import track_with_evidence
from .metadata import column_schema, labels, materialized, picture_metadata, rounded, settings_metadata, table_metadata
from .partitions import ANIMALS, SESSIONS_OF_ANIMAL, sessions_of
from .resources import AlignmentSettings, DataLake
from .spine_assets import spines_3d

#: Forward-backward consistency limit of an alignment (um): a quarter of a spine head, whatever the pixel size.
MAX_CONSISTENCY_UM = 0.25


def volume_pixels(path) -> np.ndarray:
    """Level 0 of a stored volume (read when tracking needs its pixels)."""
    return read_volume_zarr(path)[0]


def animal_sessions(lake: DataLake, animal: str) -> list[SessionInput]:
    """The sessions of an animal that have 3D spines, in acquisition order, as tracking inputs."""
    found, infos = {}, {}
    for path in sorted(lake.spines_dir(animal).glob("*.parquet")):
        if path.name.endswith(".boxes.parquet"):
            continue
        session = path.name.removesuffix(".parquet")
        shape, voxel, attrs = read_volume_info(lake.volume_path(animal, session))
        infos[session] = (path, shape, tuple(voxel), attrs)
        acquired = attrs.get("acquired_at")
        found[session] = pl.Series([acquired]).str.to_datetime(time_zone="UTC").item() if acquired else None
    check_one_scale(animal, {k: (v[2], v[3].get("voxel_size_source", "unknown")) for k, v in infos.items()})
    inputs = []
    for session in order_sessions(found):
        path, shape, size, attrs = infos[session]
        volume_path = lake.volume_path(animal, session)
        candidates_path = lake.candidates_path(animal, session)
        candidates = read_parquet(candidates_path) if candidates_path.exists() else None
        evidence = content_hash(candidates_path) if candidates is not None else "none"
        inputs.append(
            SessionInput(
                session,
                read_parquet(path),
                shape,
                f"{content_hash(path)}:{attrs.get('input_hash')}:{evidence}",
                partial(volume_pixels, volume_path),
                volume_version=str(attrs.get("input_hash")),
                candidates=candidates,
                pixel_size_um=float(infos[session][2][2]),
                voxel_size_um=(float(size[0]), float(size[1]), float(size[2])),
            )
        )
    return inputs


def check_one_scale(animal: str, voxels: dict[str, tuple[tuple, str]]) -> None:
    """Raise one line naming each session's size when the sessions of an animal were not imaged at one voxel size
    (sizes within `SAME_SIZE_TOLERANCE` of each other, e.g. rounded headers, are one size)."""
    for axis, name in ((2, "x/y pixel size"), (0, "z step")):
        sizes = {session: voxel[axis] for session, (voxel, _) in voxels.items()}
        if not same_size(sizes):
            listed = ", ".join(f"{s} {sizes[s]:.4g} um ({source})" for s, (_, source) in voxels.items())
            raise ValueError(
                f"sessions differ in {name} by more than {SAME_SIZE_TOLERANCE:.0%}: {listed}; if they are one "
                "field at one zoom, state imaging.pixel_size_um (and z_step_um) in its synapflow.yaml"
            )


def require_all_sessions(instance: dg.DagsterInstance, animal: str, present: set[str], what: str) -> None:
    """Fail, naming them, when registered sessions of the animal have no `what` yet (still running or failed):
    an animal's tracks and dynamics are computed over all its sessions or not at all."""
    missing = sorted(
        key.split("/", 1)[1] for key in sessions_of(instance, animal) if key.split("/", 1)[1] not in present
    )
    if missing:
        raise dg.Failure(
            description=f"{animal}: no {what} yet for session {', '.join(missing)} (still running, or "
            "failed): materialize them first; nothing was written"
        )


def alignment_table(report: list[dict]) -> pl.DataFrame:
    """One row per consecutive pair of sessions: how well it aligned (numbers rounded to 3 decimals)."""
    columns = {
        "from": pl.String,
        "to": pl.String,
        "ok": pl.Boolean,
        "residual_px": pl.Float64,
        "residual_back_px": pl.Float64,
        "consistency_px": pl.Float64,
        "peak": pl.Float64,
        "decoy_peak": pl.Float64,
        "spines_refound": pl.Float64,
        "decoys_refound": pl.Float64,
        "problem": pl.String,
    }
    table = pl.DataFrame([{k: r.get(k) for k in columns} for r in report], schema=columns)
    return table.with_columns(pl.col(pl.Float64).round(3))


def animal_alignments(lake: DataLake, animal: str) -> tuple[list[SessionInput], list, list[bool]]:
    """An animal's sessions in acquisition order, the alignment of each consecutive pair (from the tracks
    cache when its inputs are unchanged) with the animal's alignment settings, and whether each pair passed
    the gate (`AnimalTracker.gate`)."""
    sessions = animal_sessions(lake, animal)
    tracker = AnimalTracker(lake.tracks_cache(animal), AlignmentSettings().settings(lake, animal).alignment.params())
    pairs = list(itertools.pairwise(sessions))
    return sessions, [tracker.alignment(a, b) for a, b in pairs], [tracker.gate(a, b)[0] for a, b in pairs]


@dg.asset(
    partitions_def=ANIMALS,
    deps=[dg.AssetDep(spines_3d, partition_mapping=SESSIONS_OF_ANIMAL)],
    code_version="5",
    kinds={"parquet"},
    group_name="tracking",
    **labels("time-tracking"),
    check_specs=[
        dg.AssetCheckSpec(
            "sessions_aligned",
            asset="spine_tracks",
            description="every consecutive pair aligns consistently "
            f"(forward-backward residual <= {MAX_CONSISTENCY_UM} um); "
            "a pair that does not overlap fails the asset instead",
        )
    ],
)
def spine_tracks(
    context: dg.AssetExecutionContext,
    lake: DataLake,
    alignment: AlignmentSettings,
) -> dg.MaterializeResult:
    """Tracks of one animal: per session and track its spine (or none), and its status
    (present, new, eliminated, out_of_view, unconfirmed). Before a spine is called eliminated or new, the image
    at its aligned place in the other session is looked at: a spine the detector missed but the image shows stays
    present (`redetected`); every event carries a confidence and its reason. Only pairs of sessions whose
    alignment inputs changed are re-aligned.
    A pair of consecutive sessions that does not align fails the asset, naming the pair: no tracks
    are built across it."""
    animal = context.partition_key
    try:
        settings = alignment.settings(lake, animal)
        tracker = AnimalTracker(
            lake.tracks_cache(animal),
            settings.alignment.params(),
            settings.linking.params(),
        )
        sessions = animal_sessions(lake, animal)
        require_all_sessions(context.instance, animal, {s.key for s in sessions}, "3D spines")
        evidence = settings.evidence.params()
        # the spines found by consensus join the sessions for tracking; the sessions' own versions stay the
        # record of what was read (`upstream_versions`)
        augmented, agreed = with_consensus(tracker, sessions, settings.evidence.consensus())
        tracks, report = track_with_evidence(
            tracker, augmented, evidence or EvidenceParams(), redetect=evidence is not None, consensus=agreed
        )
    except ValueError as error:
        raise dg.Failure(description=f"{animal}: {error}") from error
    voxel = read_volume_info(lake.volume_path(animal, sessions[0].key))[1] if sessions else None
    tracks = with_positions(tracks, augmented, voxel)
    tracks = tracks.with_columns(animal=pl.lit(animal))
    failpoint("tracking")
    path = write_parquet(tracks, lake.tracks_path(animal))
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(path)),
        "dagster/row_count": len(tracks),
        "dagster/column_schema": column_schema(tracks),
        "sessions": len(sessions),
        "tracks": int(tracks["track_id"].n_unique()) if len(tracks) else 0,
        "status_counts": table_metadata(status_counts(tracks)),
        "alignment": table_metadata(alignment_table(report)),
        "max_consistency_px": rounded(
            max((r["consistency_px"] for r in report if r["consistency_px"] is not None), default=None)
        ),
        "computed": dg.MetadataValue.json(tracker.computed),
        "reused": len(tracker.reused),
        "upstream_versions": dg.MetadataValue.json({s.key: s.version for s in sessions}),
        "settings": settings_metadata(settings.tracking_fingerprint()),
        "redetected": int(tracks["redetected"].sum()),
        "consensus_spines": len(agreed),
        "unconfirmed": int((tracks["status"] == "unconfirmed").sum()),
    }
    if len(sessions) >= 2:
        metadata = {**last_two_sessions(lake, animal, sessions, tracks, tracker), **metadata}
    else:  # no pair to show: no picture left from when there was one
        remove_file(picture_path(lake.tracks_path(animal), "last_two_sessions"))
    pixel_um = float(voxel[2]) if voxel is not None else 1.0
    consistency_um = {f"{r['from']}->{r['to']}": (r["consistency_px"] or 0.0) * pixel_um for r in report}
    inconsistent = [pair for pair, um in consistency_um.items() if um > MAX_CONSISTENCY_UM]
    return materialized(
        context,
        data_version=dg.DataVersion(content_hash(path)),
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="sessions_aligned",
                passed=not inconsistent,
                severity=dg.AssetCheckSeverity.WARN,
                description=None
                if not inconsistent
                else f"forward-backward residual above {MAX_CONSISTENCY_UM} um: "
                + ", ".join(f"{p} {consistency_um[p]:.2f} um" for p in inconsistent),
                metadata={"inconsistent_pairs": dg.MetadataValue.json(inconsistent)},
            )
        ],
    )


def status_counts(tracks: pl.DataFrame) -> pl.DataFrame:
    """Spines per status (columns) and session (rows, in order)."""
    return (
        tracks.group_by("session_index", "session", "status")
        .len()
        .pivot("status", index=["session_index", "session"], values="len")
        .sort("session_index")
        .fill_null(0)
        .drop("session_index")
    )


def last_two_sessions(
    lake: DataLake, animal: str, sessions: list[SessionInput], tracks: pl.DataFrame, tracker: AnimalTracker
) -> dict[str, dg.MetadataValue]:
    """The last two sessions' projections overlaid (the earlier registered onto the later), with the track ids
    and statuses of the later one: a preview and the picture's file beside the tracks (`picture_metadata`)."""
    last = tracks.filter((pl.col("session") == sessions[-1].key) & pl.col("xmin").is_not_null())
    step = tracker.alignment(sessions[-2], sessions[-1])
    previous = step.reference_in_moving_frame(read_mip(lake.volume_path(animal, sessions[-2].key)))
    picture = two_session_png(
        previous,
        read_mip(lake.volume_path(animal, sessions[-1].key)),
        last.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
        [str(t) for t in last["track_id"]],
        last["status"].to_list(),
        names=(sessions[-2].key, sessions[-1].key),
    )
    return picture_metadata(
        "last_two_sessions",
        picture,
        f"{sessions[-2].key} (magenta, registered) and {sessions[-1].key} (green); track ids; "
        "yellow present, cyan new, red eliminated (where it was), grey unconfirmed",
        lake.tracks_path(animal),
    )


def with_positions(tracks: pl.DataFrame, sessions: list[SessionInput], voxel) -> pl.DataFrame:
    """Tracks with the spine's position in um and its layers and type where detected, and the place looked
    at or redetected otherwise."""
    if not sessions:
        return tracks.with_columns(
            x_um=pl.lit(None, pl.Float64),
            y_um=pl.lit(None, pl.Float64),
            z_um=pl.lit(None, pl.Float64),
            n_layers=pl.lit(None, pl.Int64),
            type=pl.lit(None, pl.String),
        )
    spines = pl.concat(
        [
            s.spines.select("spine_id", "x_um", "y_um", "z_um", "n_layers", "type").with_columns(session=pl.lit(s.key))
            for s in sessions
        ]
    )
    vz, vy, vx = voxel
    return tracks.join(spines, on=["session", "spine_id"], how="left").with_columns(
        x_um=pl.coalesce("x_um", (pl.col("xmin") + pl.col("xmax")) / 2 * vx),
        y_um=pl.coalesce("y_um", (pl.col("ymin") + pl.col("ymax")) / 2 * vy),
        z_um=pl.coalesce("z_um", (pl.col("first_layer") + pl.col("last_layer")) / 2 * vz),
    )
