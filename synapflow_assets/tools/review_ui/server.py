"""The review page served on 127.0.0.1 by starlette and uvicorn (both installed with Dagster's webserver)."""

from __future__ import annotations

import html
import socket
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ...tracking.corrections import STATUSES
from .page import PAGE
from .session import ReviewSession


def make_app(session: ReviewSession, recompute: Callable[[str], str | None]) -> Starlette:
    """The review page and its small JSON interface (``POST`` bodies: ``{"position": i, "status": s}``)."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.replace("__ANIMAL__", html.escape(session.animal)))

    async def events(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "animal": session.animal,
                "corrected_by": session.corrected_by,
                "token": session.token,
                "events": session.described(),
                "state": session.state(),
            }
        )

    async def picture(request: Request) -> Response:
        index = request.path_params["index"]
        if index >= len(session.pictures):
            return Response(status_code=404)
        cache = {"Cache-Control": "private, max-age=86400, immutable"}
        return Response(session.pictures[index], media_type="image/png", headers=cache)

    async def decide(request: Request) -> JSONResponse:
        position, fields = await _posted(request)
        status = fields.get("status")
        if status is not None and status not in STATUSES:
            return JSONResponse({"error": f"unknown status {status!r}"}, status_code=400)
        taken, state = await run_in_threadpool(session.decide, position, status)
        return JSONResponse(state, status_code=200 if taken else 409)

    async def undo(request: Request) -> JSONResponse:
        position, _ = await _posted(request)
        taken, state = await run_in_threadpool(session.undo, position)
        return JSONResponse(state, status_code=200 if taken else 409)

    async def finish(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(session.finish, recompute))

    return Starlette(
        routes=[
            Route("/", page),
            Route("/events", events),
            Route("/pictures/{token}/{index:int}.png", picture),
            Route("/decisions", decide, methods=["POST"]),
            Route("/undo", undo, methods=["POST"]),
            Route("/finish", finish, methods=["POST"]),
        ]
    )


async def _posted(request: Request) -> tuple[int, dict[str, Any]]:
    """The position a request is about (-1 when it names none, so the session refuses it) and its JSON fields."""
    try:
        fields = await request.json()
    except ValueError:
        fields = None
    fields = fields if isinstance(fields, dict) else {}
    position = fields.get("position")
    return (position if isinstance(position, int) else -1), fields


def make_server(app: Starlette, port: int = 0) -> tuple[Any, socket.socket, str]:
    """A uvicorn server for ``app``, the socket it will listen on (127.0.0.1:``port``, 0: any free port) and
    the page's address. Serve with ``server.run(sockets=[sock])``; stop with ``server.should_exit = True``.

    Raises
    ------
    OSError
        When the port cannot be bound.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)  # connections wait from now on, before the server runs: the address may be shown at once
    except OSError:
        sock.close()
        raise
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    return server, sock, f"http://127.0.0.1:{sock.getsockname()[1]}/"
