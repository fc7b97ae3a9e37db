"""``review-ui``: review the least confident events of an animal in the browser, one key per event."""

from __future__ import annotations

import getpass
import signal
from pathlib import Path

import click

from .app import CommandError, app, data_option


def recompute(root: Path, animal: str) -> str | None:
    """Materialize the animal's ``spine_dynamics`` through Dagster with the stored corrections (as
    ``review --apply``); the failure message, or None."""
    from ..defs.instance import open_instance
    from ..defs.resources import DataLake
    from ..pipeline import recompute_dynamics

    with open_instance(root) as instance:
        return recompute_dynamics(instance, DataLake(root=str(root)), animal)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@app.command("review-ui", help="Review the least confident events of an animal in the browser (one key each).")
@click.option("--animal", required=True, help="animal whose events to review")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="events, least confident first"
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="port on 127.0.0.1 (0: any)")
@click.option("--by", help="who corrects (default: the login name)")
@data_option()
def review_ui(*, animal: str, limit: int, port: int, by: str | None, data: str) -> int:
    """Serve the review page until Ctrl-C; decisions are stored at once, the dynamics recomputed on finish (F)
    or, when decisions are left unrecomputed, as the server stops."""
    from ..tools.review_ui import load_session, make_app, make_server
    from .lab import local_root

    local_root(data, "review-ui")
    root = Path(data)
    session = load_session(root, animal, limit=limit, corrected_by=by or getpass.getuser())
    try:
        server, sock, url = make_server(make_app(session, lambda name: recompute(root, name)), port)
    except OSError as error:
        raise CommandError(f"127.0.0.1:{port}: cannot listen there ({error.strerror}); pass another --port") from error
    print(
        f"{len(session.events)} events of {animal} to review at {url} (P present, E eliminated, N new, S skip, "
        "Backspace undo, F finish); Ctrl-C stops",
        flush=True,
    )
    stop = signal.signal(signal.SIGTERM, _interrupt)  # a `kill` stops it like Ctrl-C: the dynamics are recomputed
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        signal.signal(signal.SIGTERM, stop)
    decided = session.state()["stored"]
    if session.dirty:
        print(f"recomputing spine_dynamics of {animal} with the {decided} stored decisions...", flush=True)
        session.finish(lambda name: recompute(root, name))
        print(session.message)
        return 1 if session.dirty else 0
    print(f"{decided} decisions stored" + (f"; {session.message}" if session.message else ""))
    return 0
