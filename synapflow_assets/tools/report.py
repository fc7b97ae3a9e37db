"""A self-contained HTML report a PI can open: per animal the dynamics plot and table, the sessions with their
detections on the projection, the alignment of consecutive sessions, the detector version and the lineage."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from ..features.dynamics_plots import dynamics_png, dynamics_table, persistent_size_rows, size_trajectories_png
from ..features.morphology_plots import morphology_png, relative_size_png
from ..features.plausibility import animal_plausibility
from ..features.size_change import HEAD_VOLUME_CV, log_ratio_half_width, relative_sizes, size_changes
from ..imaging.errors import InputError
from ..imaging.ome_zarr import read_mip
from ..imaging.overlay import overlay_png
from ..settings import load_settings
from ..store.feature_store import query

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px} table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} th{background:#eee}"
    "img{max-width:100%} .overlays img{width:260px} h2{border-top:2px solid #444;padding-top:.5em}"
    "figure{margin:.5em 0} .overlays figure{display:inline-block;vertical-align:top;width:260px;margin:2px}"
    "figcaption{font-size:12px;color:#333}"
)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _figure(png: bytes, caption: str) -> str:
    """A picture with its caption visible under it (and as its alternative text)."""
    return f"<figure>{_img(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def plausibility_list(root: Path, animal: str, dynamics: pl.DataFrame) -> str:
    """The animal's plausibility checks (`features.plausibility`, limits from its `synapflow.yaml`), one line
    each, the failed ones first and marked."""
    store, safe = root / "features.duckdb", animal.replace("'", "''")
    tracks = query(store, f"SELECT * FROM tracks WHERE animal = '{safe}'")
    sessions = query(store, f"SELECT session, acquired_at, spines_per_um FROM sessions WHERE animal = '{safe}'")
    limits = load_settings(root / "landing", animal).plausibility.limits()
    found = sorted(animal_plausibility(tracks, dynamics, sessions, limits), key=lambda f: f.passed)
    items = "".join(
        f"<li>{'ok' if f.passed else '<b>implausible</b>'} {html.escape(f.name)}: {html.escape(f.line)}</li>"
        for f in found
    )
    return f"<h3>Plausibility</h3><ul>{items}</ul>"


def counts_line(dynamics: pl.DataFrame, sizes: pl.DataFrame) -> str:
    """What the counts of an animal are, all from its ``dynamics`` table but the persistent spines, which are
    counted from the same tracks with the same statuses (a subset of those in view in every session)."""
    d = dynamics.sort("session_index")
    persistent = sizes.filter(pl.col("size").is_not_null())["track_id"].n_unique()
    first, last = d.row(0, named=True), d.row(-1, named=True)
    return (
        f"<p>Spines in view (present or new): {first['n_in_view']} in {html.escape(str(first['session']))}, "
        f"{last['n_in_view']} in {html.escape(str(last['session']))}; of those in view in the first session, "
        f"{last['n_surviving']} of {last['n_survival_reference']} still present in the last. "
        f"Persistent spines (in view with a size in all {len(d)} sessions, as plotted): {persistent}.</p>"
    )


def morphology_section(root: Path, animal: str, sessions: list[str]) -> str:
    """Head diameter, neck length and head volume per session, the head volume of persistent spines across
    sessions with intervals, and the size changes (first to last session) beyond the measurement noise."""
    store, safe = root / "features.duckdb", animal.replace("'", "''")
    features = query(
        store,
        "SELECT session, head_diameter_um, neck_length_um, head_volume_um3 FROM spine_features "
        f"WHERE animal = '{safe}'",
    )
    parts = [
        "<h3>Spine morphology</h3>",
        _figure(
            morphology_png(features, sessions, title=animal),
            f"{animal}: head diameter (um), neck length (um) and head volume (um^3) of the spines of each session "
            "(box: quartiles and median, whiskers: 5-95%)",
        ),
    ]
    tracks = query(
        store,
        f"""SELECT t.track_id, t.session, t.session_index, t.status, f.head_volume_um3 FROM tracks t
        LEFT JOIN spine_features f ON f.spine_key = t.spine_key WHERE t.animal = '{safe}'""",
    )
    if not len(tracks):
        return "\n".join(parts)
    half = log_ratio_half_width()
    parts.append(
        _figure(
            relative_size_png(relative_sizes(tracks), sessions, half_width=half, title=animal),
            f"{animal}: head volume of each persistent spine relative to its first session (grey), their median "
            f"with its 95% interval (purple), and the 95% band of an unchanged spine from the measurement noise "
            f"(shaded, CV {HEAD_VOLUME_CV:.1%} per session)",
        )
    )
    changes = size_changes(tracks)
    if len(changes):
        grew = int((changes["size_change_low"] > 0).sum())
        shrank = int((changes["size_change_high"] < 0).sum())
        median = changes.select(pl.col("size_change").median()).item()
        parts.append(
            f"<p>Head volume change from the first to the last session in view ({len(changes)} spines in view in "
            f"at least two sessions, view <code>size_changes</code>): median {median:+.1%}; "
            f"{grew} grew and {shrank} shrank beyond the measurement noise (95% interval excluding 0).</p>"
        )
    return "\n".join(parts)


def animal_section(root: Path, animal: str, alignment: pl.DataFrame | None = None) -> str:
    """One animal: dynamics plot and table, sessions, overlays, alignment, detector and lineage."""
    store = root / "features.duckdb"
    safe = animal.replace("'", "''")
    dynamics = query(store, f"SELECT * FROM dynamics WHERE animal = '{safe}' ORDER BY session_index")
    sessions = query(
        store,
        f"""SELECT session, acquired_at, layers, n_spines, round(spines_per_um, 3) AS spines_per_um,
        model, model_version, run_id, code_version, computed_at FROM sessions WHERE animal = '{safe}'
        ORDER BY acquired_at, session""",
    )
    parts = [f"<h2>{html.escape(animal)}</h2>"]
    if len(dynamics):
        sizes = query(
            store,
            f"""SELECT t.session, t.session_index, t.track_id, t.status, f.size FROM tracks t
            LEFT JOIN spine_features f ON f.animal = t.animal AND f.session = t.session AND f.spine_id = t.spine_id
            WHERE t.animal = '{safe}'""",
        )
        sizes = persistent_size_rows(sizes, len(dynamics))
        parts += [
            counts_line(dynamics, sizes),
            plausibility_list(root, animal, dynamics),
            _figure(
                dynamics_png(dynamics, title=animal),
                f"{animal}: survival of the first session's spines (left), formation and elimination per session "
                "(right), with 95% intervals",
            ),
            _figure(
                size_trajectories_png(sizes, title=animal),
                f"{animal}: size of each persistent spine relative to the first session (grey), median and "
                "interquartile band (purple)",
            ),
            _table(dynamics_table(dynamics)),
        ]
    else:
        parts.append("<p>No dynamics (tracks not computed, or the sessions do not align).</p>")
    parts.append(morphology_section(root, animal, sessions["session"].to_list()))
    parts += [
        "<h3>Sessions</h3>",
        _table(sessions.select("session", "acquired_at", "layers", "n_spines", "spines_per_um")),
    ]
    overlays = []
    for session in sessions["session"]:
        spines = query(
            store, f"SELECT xmin, ymin, xmax, ymax FROM spines WHERE animal = '{safe}' AND session = '{session}'"
        )
        mip = read_mip(root / "volumes" / animal / f"{session}.ome.zarr")
        overlays.append(
            _figure(
                overlay_png(mip, spines.to_numpy() if len(spines) else np.zeros((0, 4)), max_size=260),
                f"{session}: {len(spines)} 3D spines (orange boxes) on the maximum projection",
            )
        )
    parts.append('<h3>3D spines on each projection</h3><div class="overlays">' + "".join(overlays) + "</div>")
    if alignment is not None and len(alignment):
        parts += ["<h3>Alignment of consecutive sessions</h3>", _table(alignment)]
    models = sessions.select("model", "model_version").unique()
    parts.append(
        "<h3>Detector and lineage</h3><p>Detector: "
        + ", ".join(f"{html.escape(str(m))} version {html.escape(str(v))}" for m, v in models.iter_rows())
        + "</p>"
    )
    parts.append(_table(sessions.select("session", "run_id", "code_version", "computed_at")))
    return "\n".join(parts)


def build_report(
    root: Path,
    animals: list[str] | None = None,
    alignments: dict[str, pl.DataFrame] | None = None,
    *,
    source: str | None = None,
    changes: tuple[str, list[str]] | None = None,
) -> str:
    """The HTML of the report over ``animals`` (default: every animal in the store).

    ``source`` names where the numbers come from (default: ``root``), e.g. a snapshot; ``changes`` is
    ``(since, lines)``: what changed since another snapshot (``snapshot_query.snapshot_changes``), listed first.

    Raises
    ------
    InputError
        When an animal has no sessions in the store.
    """
    root = Path(root)
    known = query(root / "features.duckdb", "SELECT DISTINCT animal FROM sessions ORDER BY animal")["animal"].to_list()
    animals = animals or known
    for animal in animals:
        if animal not in known:
            raise InputError(root / "features.duckdb", f"no sessions of animal {animal!r} in the feature store")
    body = "\n".join(animal_section(root, a, (alignments or {}).get(a)) for a in animals)
    if changes is not None:
        since, lines = changes
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines) or "<li>no change of the dynamics</li>"
        body = f"<h2>Changes since snapshot {html.escape(since)}</h2><ul>{items}</ul>\n{body}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>SynapFlow report</title><style>{STYLE}</style>"
        f"</head><body><h1>Dendritic spine dynamics</h1><p>{len(animals)} animal(s), "
        f"from {html.escape(source or str(root))}, "
        f"{stamp}. Rates are per session with their 95% intervals.</p>{body}</body></html>"
    )
