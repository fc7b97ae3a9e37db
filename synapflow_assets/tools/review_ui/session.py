"""The state of a review in the browser: its events, their pictures and the decisions, stored at once.

:func:`load_session` picks the events (:func:`~..review.review_events`) and renders their pictures once (both
sessions side by side, :func:`~..review.event_picture`), so that a key press only stores a decision. Each
decision is written to the ``corrections`` table at once, with who and when; undo deletes the row it wrote;
a skip writes nothing. ``finish`` recomputes the dynamics through the ``recompute`` it is given.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from ...errors import SynapFlowError
from ...imaging.errors import InputError
from ...store.feature_store import FeatureStore, query
from ...tracking.corrections import CORRECTION_SCHEMA, STATUSES
from ..review import check_animal, event_picture, review_events, session_volumes

STORE_WAIT_SECONDS = 10.0
"""How long a decision waits for another process holding the store before the page says so."""
SHOWN = ["session", "other_session", "track_id", "status", "redetected", "confidence", "reason"]
SHOWN += ["evidence_score", "contrast_ratio", "x_um", "y_um", "z_um"]
"""The columns of an event the page shows beside its picture."""


@dataclass
class Step:
    """One key press that moved on: the event's index, the status set (None: skipped) and when it was stored."""

    index: int
    status: str | None
    corrected_at: datetime | None


class ReviewSession:
    """The events under review, their pictures (PNG bytes) and the decisions made so far, in order.

    The next event to decide is ``events[len(steps)]``. Methods are safe to call from several threads.
    """

    def __init__(self, root: Path, animal: str, events: pl.DataFrame, pictures: list[bytes], corrected_by: str):
        self.root, self.animal, self.events, self.pictures = Path(root), animal, events, pictures
        self.corrected_by = corrected_by
        self.steps: list[Step] = []
        self.dirty = False
        """Whether the corrections changed since the dynamics were last recomputed."""
        self.message = ""
        self.token = secrets.token_hex(4)
        """Part of the pictures' addresses: a browser never shows a cached picture of another session."""
        self._lock = threading.Lock()

    def state(self) -> dict[str, Any]:
        """Where the review stands, for the page."""
        return {
            "position": len(self.steps),
            "total": len(self.events),
            "stored": sum(s.status is not None for s in self.steps),
            "dirty": self.dirty,
            "message": self.message,
            "steps": [
                {"index": s.index, "session": session, "track_id": track, "from": status, "to": s.status}
                for s in self.steps
                for session, track, status in [self.events.select("session", "track_id", "status").row(s.index)]
            ],
        }

    def described(self) -> list[dict[str, Any]]:
        """The events as the page shows them."""
        return self.events.select(SHOWN).with_row_index("index").to_dicts()

    def decide(self, position: int, status: str | None) -> tuple[bool, dict[str, Any]]:
        """Decide the event at ``position`` (a status of :data:`STATUSES`, or None to skip); whether it was
        taken (the page's position must be the review's, and an event must be left) and the state."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        with self._lock:
            if position != len(self.steps) or position >= len(self.events):
                self.message = "that event is already decided (another tab?); shown: the review as it stands"
                return False, self.state()
            at = None
            if status is not None:
                event = self.events.row(position, named=True)
                at = datetime.now(UTC)
                row = {c: event[c] for c in ("animal", "session", "track_id", "x_um", "y_um", "z_um")}
                row |= {"computed_status": event["status"], "status": status, "corrected_by": self.corrected_by}
                correction = pl.DataFrame([row | {"corrected_at": at, "note": None}], schema=CORRECTION_SCHEMA)
                if not self._stored(lambda store: store.add_corrections(correction)):
                    return False, self.state()
                self.dirty = True
            self.steps.append(Step(position, status, at))
            self.message = ""
            return True, self.state()

    def undo(self, position: int) -> tuple[bool, dict[str, Any]]:
        """Take back the last step (deleting the correction it stored); whether there was one to take back."""
        with self._lock:
            if position != len(self.steps) or not self.steps:
                self.message = "nothing to undo" if not self.steps else "the review moved on (another tab?)"
                return False, self.state()
            step = self.steps[-1]
            if step.status is not None:
                event = self.events.row(step.index, named=True)
                where = [self.animal, event["session"], event["track_id"], self.corrected_by, step.corrected_at]
                sql = """DELETE FROM corrections WHERE animal = ? AND session = ? AND track_id = ?
                         AND corrected_by = ? AND corrected_at = ?"""
                if not self._stored(lambda store: store.connection.execute(sql, where)):
                    return False, self.state()
                self.dirty = True
            self.steps.pop()
            self.message = ""
            return True, self.state()

    def _stored(self, action: Callable[[FeatureStore], object]) -> bool:
        """Run a write on the store; False (and the message says why) when the store refused it."""
        try:
            with FeatureStore(self.root / "features.duckdb", wait_seconds=STORE_WAIT_SECONDS) as store:
                action(store)
        except SynapFlowError as error:
            self.message = f"not stored: {error}"
            return False
        return True

    def finish(self, recompute: Callable[[str], str | None]) -> dict[str, Any]:
        """Recompute the animal's dynamics with the stored corrections (``recompute``: the failure or None)."""
        with self._lock:
            if not self.dirty:
                self.message = "nothing new to recompute"
                return self.state()
            try:
                problem = recompute(self.animal)
            except Exception as error:  # the page says it; the server goes on (the stop retries)
                problem = str(error) or type(error).__name__
            if problem:
                self.message = f"corrections stored, but spine_dynamics failed: {problem}"
                return self.state()
            self.dirty = False
            corrected = query(
                self.root / "features.duckdb",
                "SELECT count(*) AS n FROM tracks WHERE animal = '"
                + self.animal.replace("'", "''")
                + "' AND corrected_by IS NOT NULL",
            )["n"][0]
            self.message = f"spine_dynamics of {self.animal} recomputed; {corrected} of its track rows are corrected"
            return self.state()


def load_session(root: Path, animal: str, *, limit: int, corrected_by: str) -> ReviewSession:
    """The ``limit`` least confident events of ``animal`` not yet corrected, with their pictures rendered.

    Raises
    ------
    InputError
        When there is no store, the animal has no tracks, or no event is left to review.
    """
    root = Path(root)
    store = root / "features.duckdb"
    if not store.exists():
        raise InputError(store, "no feature store (run ingest first, or pass --data)")
    events = review_events(store, animal, limit)
    if not len(events):
        check_animal(store, animal)
        raise InputError(store, f"no events of animal {animal!r} left to review (all corrected, or none found)")
    volume = session_volumes(root, animal)
    pictures = []
    for event in events.iter_rows(named=True):
        png = io.BytesIO()
        event_picture(event, volume).save(png, format="PNG", compress_level=1)
        pictures.append(png.getvalue())
    return ReviewSession(root, animal, events, pictures, corrected_by)
