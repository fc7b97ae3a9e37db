"""Tracks: one persistent identity per spine across the sessions of an animal."""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from .depth import FORBIDDEN, assign, sparse_assign

#: Up to this many (earlier, later) pairs a match is solved on the dense matrix; above, by components.
_DENSE_PAIRS = 1_000_000

TRACK_SCHEMA = {
    "session": pl.String,
    "session_index": pl.Int64,
    "track_id": pl.Int64,
    "spine_id": pl.Int64,
    "status": pl.String,
    "detected": pl.Boolean,
}


@dataclass
class SessionLinks:
    """Acceptable links from an earlier session's spines to a later session's (see ``time.link_costs``),
    and the earlier spines that fall out of the later session's view."""

    costs: pl.DataFrame
    out_of_view: set[int] = field(default_factory=set)


@dataclass
class _Track:
    index: int
    spine: int
    mode: str = "active"
    absent_row: dict | None = None


def _match(costs: pl.DataFrame, earlier: list[int], later: list[int]) -> list[tuple[int, int]]:
    """Optimal one-to-one links among the given earlier and later ids."""
    usable = costs.filter(pl.col("earlier_id").is_in(earlier) & pl.col("later_id").is_in(later))
    if not len(usable):
        return []
    rows, i = np.unique(usable["earlier_id"].to_numpy(), return_inverse=True)
    cols, j = np.unique(usable["later_id"].to_numpy(), return_inverse=True)
    if len(rows) * len(cols) > _DENSE_PAIRS:
        r, c = sparse_assign(i, j, usable["cost"].to_numpy(), len(rows), len(cols))
        return list(zip(rows[r].tolist(), cols[c].tolist(), strict=False))
    matrix = np.full((len(rows), len(cols)), FORBIDDEN)
    matrix[i, j] = usable["cost"].to_numpy()
    r, c = assign(matrix, FORBIDDEN)
    return list(zip(rows[r].tolist(), cols[c].tolist(), strict=False))


def build_tracks(
    sessions: list[str],
    spine_ids: dict[str, np.ndarray],
    links_for: Callable[[int, int], SessionLinks],
    max_gap: int = 1,
) -> pl.DataFrame:
    """Chain session-to-session links into tracks.

    Session by session, the spines still followed are linked to the new
    session's spines: first those seen in the previous session, then those
    missed for up to ``max_gap`` sessions, then those out of view (followed
    through the chained alignments for as long as they stay out of view).

    Parameters
    ----------
    sessions : list of str
        Session keys of one animal in acquisition order.
    spine_ids : dict
        Session -> ids of its 3D spines.
    links_for : callable
        ``(earlier index, later index) -> SessionLinks``.
    max_gap : int
        Sessions a spine may be missed and be re-linked afterwards.

    Returns
    -------
    polars.DataFrame
        One row per (session, track): ``session, session_index, track_id,
        spine_id`` (null when not detected), ``status`` (``present``: also in
        the previous session, or the first session; ``new``; ``eliminated``:
        gone since the previous session; ``out_of_view``: outside the field),
        ``detected`` (False for a spine missed in a session and re-linked later).
    """
    rows: list[dict] = []
    tracks: dict[int, _Track] = {}
    for t, session in enumerate(sessions):
        unmatched = set(np.asarray(spine_ids.get(session, []), dtype=np.int64).tolist())
        continued: dict[int, int] = {}
        by_index: dict[int, list[int]] = {}  # the tracks by the session they were last seen in, in track order
        for k, s in tracks.items():
            by_index.setdefault(s.index, []).append(k)
        for index in range(t - 1, -1, -1):
            gap = t - index
            waiting = {
                tracks[k].spine: k
                for k in by_index.get(index, ())
                if k not in continued
                and (
                    gap == 1 or tracks[k].mode == "out_of_view" or (tracks[k].mode == "missing" and gap <= max_gap + 1)
                )
            }
            if waiting and unmatched:
                for earlier_spine, later_spine in _match(links_for(index, t).costs, list(waiting), sorted(unmatched)):
                    continued[waiting[earlier_spine]] = later_spine
                    unmatched.discard(later_spine)
        for k, track in tracks.items():
            if k in continued:
                if track.mode == "missing" and track.absent_row is not None:
                    track.absent_row.update(status="present", detected=False)
                    rows.extend(_row(sessions[i], i, k, None, "present", False) for i in range(track.index + 2, t))
                rows.append(_row(session, t, k, continued[k], "present"))
                tracks[k] = _Track(t, continued[k])
            elif track.mode == "active" or track.mode == "out_of_view":
                outside = track.spine in links_for(track.index, t).out_of_view
                if track.mode == "active" or outside:
                    status = "out_of_view" if outside else "eliminated"
                    track.absent_row = _row(session, t, k, None, status, False)
                    track.mode = status if status == "out_of_view" else "missing"
                    rows.append(track.absent_row)
                else:
                    rows.append(_row(session, t, k, None, "eliminated", False))
                    track.mode = "gone"
        for spine in sorted(unmatched):
            tracks[len(tracks)] = _Track(t, spine)
            rows.append(_row(session, t, len(tracks) - 1, spine, "present" if t == 0 else "new"))
    return pl.DataFrame({c: [r[c] for r in rows] for c in TRACK_SCHEMA}, schema=TRACK_SCHEMA).sort(
        "session_index", "track_id"
    )


def _row(session: str, index: int, track: int, spine: int | None, status: str, detected: bool = True) -> dict:
    return {
        "session": session,
        "session_index": index,
        "track_id": track,
        "spine_id": spine,
        "status": status,
        "detected": detected,
    }
