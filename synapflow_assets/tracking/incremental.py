"""Track an animal incrementally: session pairs are aligned and linked once, then reused from a cache."""

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import SynapFlowError
from ..store.atomic_files import write_parquet_atomic
from .align import Alignment, AlignParams, align_sessions
from .correspondence import Correspondence, spine_correspondence
from .time import TimeLinkParams, link_costs, project_spines
from .tracks import SessionLinks, build_tracks


@dataclass(frozen=True)
class SessionInput:
    """One session of an animal, as time tracking needs it.

    ``version`` must change whenever the volume or the spines change (e.g. a
    hash of both), ``volume_version`` (default: ``version``) whenever the
    volume changes; ``load_volume`` is called only when an alignment has to be
    computed or the image is looked at. ``candidates`` are the detector's
    boxes down to a low threshold (``layer, xmin, ymin, xmax, ymax, score``),
    used as evidence for spines it missed (see ``tracking.redetection``).
    ``pixel_size_um`` (x/y) lets fine layers be aligned binned (see
    ``AlignParams.working_pixel_um``); ``voxel_size_um`` (z, y, x) gives spines found later (see
    ``tracking.consensus``) their micrometres. ``detected`` is the session as
    detected when spines were added to it (redetection): the alignment gate
    judges the detected spines only, since spines placed through the
    alignment would vouch for it.
    """

    key: str
    spines: pl.DataFrame
    shape_zyx: tuple[int, int, int]
    version: str
    load_volume: Callable[[], np.ndarray]
    volume_version: str | None = None
    candidates: pl.DataFrame | None = None
    pixel_size_um: float | None = None
    voxel_size_um: tuple[float, float, float] | None = None
    detected: "SessionInput | None" = None


CACHE_FORMAT = 4
"""Bumped whenever what is cached per pair changes (2: the backward field and the consistency residual;
3: the gate counts only blocks holding structure; 4: the decoy peak of the correspondence test)."""

_FIELDS = ("field_yx", "field_back_yx")


def _save_alignment(path: Path, alignment: Alignment, meta: dict) -> None:
    scalars = {k: v for k, v in asdict(alignment).items() if k not in _FIELDS}
    tmp = path.with_name(f".{path.name}.tmp.npz")
    back = alignment.field_back_yx if alignment.field_back_yx is not None else np.zeros(0)
    np.savez(tmp, field_yx=alignment.field_yx, field_back_yx=back, scalars=json.dumps(scalars), meta=json.dumps(meta))
    os.replace(tmp, path)


def _load_alignment(path: Path, meta: dict) -> Alignment | None:
    if not path.exists():
        return None
    with np.load(path) as stored:
        if json.loads(str(stored["meta"])) != meta:
            return None
        scalars = json.loads(str(stored["scalars"]))
        scalars["shift_yx"] = tuple(scalars["shift_yx"])
        scalars["shape_yx"] = tuple(scalars["shape_yx"])
        return Alignment(field_yx=stored["field_yx"], field_back_yx=stored["field_back_yx"], **scalars)


class AlignmentFailed(SynapFlowError, ValueError):
    """Consecutive sessions of an animal could not be aligned; the message names every failed pair and why."""


class AnimalTracker:
    """Aligns and links the sessions of one animal, caching every pair in ``cache_dir``.

    A pair is recomputed only when the version of a session it involves or a
    parameter changed, so adding session N costs one alignment and a few
    small assignments whatever N is; a session inserted between two others
    creates new pairs and the pairs it replaced are no longer used.
    """

    def __init__(
        self, cache_dir: Path, align_params: AlignParams = AlignParams(), link_params: TimeLinkParams = TimeLinkParams()
    ):
        self.cache_dir = Path(cache_dir)
        self.align_params, self.link_params = align_params, link_params
        self.computed: list[str] = []
        self.reused: list[str] = []
        self._alignments: dict[tuple[str, str], tuple[dict, Alignment]] = {}
        self._gates: dict[tuple, tuple[Alignment, tuple[bool, str | None, Correspondence]]] = {}

    def alignment(self, a: SessionInput, b: SessionInput) -> Alignment:
        versions = [a.volume_version or a.version, b.volume_version or b.version]
        meta = {
            "versions": versions,
            "params": repr(self.align_params),
            "format": CACHE_FORMAT,
            "pixel_size_um": a.pixel_size_um,
        }
        if (memo := self._alignments.get((a.key, b.key))) is not None and memo[0] == meta:
            return memo[1]
        path = self.cache_dir / f"align__{a.key}__{b.key}.npz"
        cached = _load_alignment(path, meta)
        if cached is not None:
            self.reused.append(f"align {a.key}->{b.key}")
            self._alignments[a.key, b.key] = (meta, cached)
            return cached
        if a.shape_zyx[1:] != b.shape_zyx[1:]:
            raise ValueError(
                f"sessions {a.key} and {b.key} have different layer sizes {a.shape_zyx[1:]} and {b.shape_zyx[1:]}"
            )
        start = time.perf_counter()
        result = align_sessions(a.load_volume(), b.load_volume(), self.align_params, pixel_size_um=a.pixel_size_um)
        self.computed.append(f"align {a.key}->{b.key} ({time.perf_counter() - start:.2f} s)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        _save_alignment(path, result, meta)
        self._alignments[a.key, b.key] = (meta, result)
        return result

    def gate(self, a: SessionInput, b: SessionInput) -> tuple[bool, str | None, Correspondence]:
        """Whether consecutive sessions ``a`` and ``b`` show the same field, why not, and the spine evidence.

        The spines decide when they can (:attr:`.correspondence.Correspondence.verdict`:
        enough of them in the overlap, re-found under the alignment clearly more
        often than under shifted decoys, or not more often); otherwise the image
        test of the alignment does (:attr:`.align.Alignment.ok`).
        """
        step = self.alignment(a, b)
        a, b = a.detected or a, b.detected or b
        # the same sessions (versions) under the same alignment give the same answer: computed once per pair
        key = (a.key, a.version, b.key, b.version, b.shape_zyx)
        if (memo := self._gates.get(key)) is not None and memo[0] is step:
            return memo[1]
        found = spine_correspondence(a.spines, b.spines, step.map_points, (b.shape_zyx[1], b.shape_zyx[2]))
        if found.verdict is None:
            problem = step.problem()
            if problem is not None and found.decisive:
                problem += f"; the spines could not decide: {found.describe()}"
            answer = step.ok, problem, found
        else:
            answer = found.verdict, None if found.verdict else f"no correspondence: {found.describe()}", found
        self._gates[key] = (step, answer)
        return answer

    def links(self, chain: list[SessionInput]) -> SessionLinks:
        """Links from ``chain[0]`` to ``chain[-1]`` through the alignments of consecutive members."""
        first, last = chain[0], chain[-1]
        meta = {"versions": [s.version for s in chain], "params": repr((self.align_params, self.link_params))}
        path = self.cache_dir / f"links__{first.key}__{last.key}.parquet"
        meta_path = path.with_suffix(".json")
        if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta:
            self.reused.append(f"links {first.key}->{last.key}")
            stored = pl.read_parquet(path)
            return SessionLinks(
                stored.filter(pl.col("later_id") >= 0).select("earlier_id", "later_id", "cost"),
                set(stored.filter(pl.col("later_id") < 0)["earlier_id"].to_list()),
            )
        steps = [self.alignment(a, b) for a, b in itertools.pairwise(chain)]
        ok = all(self.gate(a, b)[0] for a, b in itertools.pairwise(chain))

        def map_points(yx: np.ndarray) -> np.ndarray:
            for step in steps:
                yx = step.map_points(yx)
            return yx

        projected = project_spines(
            first.spines, map_points, sum(s.z_shift for s in steps), last.shape_zyx, self.link_params.border_px
        )
        if not ok:
            projected = projected.with_columns(in_view=pl.lit(False))
        costs = link_costs(projected, last.spines, self.link_params)
        gone = projected.filter(~pl.col("in_view"))["spine_id"].to_list()
        stored = pl.concat(
            [
                costs,
                pl.DataFrame(
                    {"earlier_id": gone, "later_id": [-1] * len(gone), "cost": [np.nan] * len(gone)},
                    schema=costs.schema,
                ),
            ]
        )
        write_parquet_atomic(stored, path)
        meta_path.write_text(json.dumps(meta))
        return SessionLinks(costs, set(gone))

    def track(self, sessions: list[SessionInput], *, require_aligned: bool = True) -> tuple[pl.DataFrame, list[dict]]:
        """Tracks of the animal over ``sessions`` (in acquisition order) and one alignment report per consecutive pair.

        Raises :class:`AlignmentFailed` naming the pairs whose alignment is not
        trusted (unless ``require_aligned`` is False: their spines are then
        marked out of view), so that no track is built across a failed pair.
        """
        memo: dict[tuple[int, int], SessionLinks] = {}

        def links_for(earlier: int, later: int) -> SessionLinks:
            if (earlier, later) not in memo:
                memo[earlier, later] = self.links(sessions[earlier : later + 1])
            return memo[earlier, later]

        report = []
        for t in range(1, len(sessions)):
            step = self.alignment(sessions[t - 1], sessions[t])
            ok, problem, found = self.gate(sessions[t - 1], sessions[t])
            report.append(
                {
                    "from": sessions[t - 1].key,
                    "to": sessions[t].key,
                    "ok": ok,
                    "rotation_deg": _round(step.rotation_deg, 3),
                    "shift_yx_px": [_round(v, 2) for v in step.shift_yx],
                    "z_shift": step.z_shift,
                    "peak": _round(step.peak, 1),
                    "decoy_peak": _round(step.decoy_peak, 1),
                    "trusted_blocks": _round(step.trusted_blocks, 2),
                    "residual_px": _round(step.residual_px, 3),
                    "trusted_blocks_back": _round(step.trusted_blocks_back, 2),
                    "residual_back_px": _round(step.residual_back_px, 3),
                    "consistency_px": _round(step.consistency_px, 3),
                    "structure_blocks": step.structure_blocks,
                    "spines_refound": _round(found.matched, 3),
                    "decoys_refound": _round(found.decoy, 3),
                    "problem": problem,
                }
            )
        failed = [r for r in report if not r["ok"]]
        if failed and require_aligned:
            raise AlignmentFailed(
                "; ".join(f"sessions {r['from']} -> {r['to']} do not align: {r['problem']}" for r in failed)
                + " (check that both show the same field of view, or relax the alignment settings)"
            )
        tracks = build_tracks(
            [s.key for s in sessions],
            {s.key: s.spines["spine_id"].to_numpy() for s in sessions},
            links_for,
            self.link_params.max_gap,
        )
        return tracks, report


def _round(value: float, digits: int) -> float | None:
    """Rounded for a JSON report; NaN (nothing to measure, e.g. no overlap) becomes None."""
    return None if not np.isfinite(value) else round(float(value), digits)
