"""Stop on request: SIGTERM or SIGINT ends a long command (``ingest``, ``demo``) within seconds.

Dagster replaces the process's signal handlers while a run executes: a signal then fails the running step
(DuckDB rolls back its transaction) and the command would carry on with the next partition. So
:func:`stop_on_signals` installs a handler that raises ``KeyboardInterrupt`` (between runs) and also listens
on the interpreter's signal wake-up file, which sees every signal whichever handler is installed; a signal
sets :func:`stop_requested`, and the loop over partitions stops at its next check (:func:`check_stop`).
Writes are atomic, so what was interrupted is simply not there; the next ``ingest`` finishes it.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from .errors import SynapFlowError

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_requested: dict[str, signal.Signals | None] = {"signal": None}
_interrupted = {"raised": False}
AGAIN = b"\x00"  # on the wake-up socket beside signal numbers: interrupt the main thread again
_in_hook: dict[str, object] = {"active": False, "again": None}
"""While our unraisable hook runs, an interrupt raised there would be dropped too: the handler asks for it again."""


class Stopped(SynapFlowError, RuntimeError):
    """The command stopped on a signal; exit status 128 + the signal's number, as a shell reports it."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        _quiet_cut_short_coroutines()  # again: a ``catch_warnings`` block the signal interrupted drops filters
        self.exit_code = 128 + int(signum)
        self.signum = signum


def stop_requested() -> signal.Signals | None:
    """The signal that asked this process to stop, or None."""
    return _requested["signal"]


def check_stop(done: str = "") -> None:
    """Raise :class:`Stopped` when a stop was requested (``done``: what was finished, for the message)."""
    if (signum := stop_requested()) is not None:
        raise Stopped(
            signum,
            f"stopped by {signum.name}{f' ({done})' if done else ''}; nothing half-written is kept: run the same "
            "command again to finish",
        )


def _quiet_cut_short_coroutines() -> None:
    """A library call cut short by the signal (zarr's async reads) leaves a coroutine that warns at exit."""
    warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)


def _request(signum: int) -> None:
    if _requested["signal"] is None:
        _requested["signal"] = signal.Signals(signum)
    _quiet_cut_short_coroutines()


def _interrupt(signum: int, frame: object) -> None:
    _request(signum)
    again = _in_hook["again"]
    if _in_hook["active"] and callable(again):
        again()  # raised inside the hook it would be lost: interrupt the main thread again once it has returned
        return
    _interrupted["raised"] = True
    raise KeyboardInterrupt


def exit_process(status: int) -> NoReturn:
    """End ``python -m synapflow_assets`` with ``status``, also after a stop on a signal.

    In CPython 3.11 a ``KeyboardInterrupt`` raised inside ``eval``'d code (``collections.namedtuple`` builds
    classes so, at import time) marks the interpreter as interrupted even when caught, and ``python -m`` then
    ends by SIGINT whatever status the command returned. So after our handler raised one, the process flushes
    its streams and logs and leaves with :func:`os._exit`; everything it wrote was closed while the stop unwound.
    """
    if not _interrupted["raised"]:
        sys.exit(status)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT request a stop: see the module's description.

    A ``KeyboardInterrupt`` that reaches the block's end becomes :class:`Stopped`. Only in the main thread
    (elsewhere signals are the caller's business).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested["signal"] = None
    handlers = {signum: signal.signal(signum, _interrupt) for signum in SIGNALS}
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while data := reader.recv(64):
            for signum in data:
                if signum in SIGNALS:
                    _request(signum)
                elif signum == AGAIN[0]:
                    _thread.interrupt_main()

    watcher = threading.Thread(target=watch, name="synapflow-stop", daemon=True)
    watcher.start()
    previous_hook = sys.unraisablehook

    def again() -> None:
        with contextlib.suppress(OSError):  # closed: the block has ended
            writer.send(AGAIN)

    def redeliver_lost_interrupt(unraisable: sys.UnraisableHookArgs) -> None:
        # our KeyboardInterrupt raised in a weakref callback or __del__ is printed and dropped: the watcher
        # interrupts the main thread again; an interrupt that lands while this hook still runs is asked for
        # again by the handler (`_in_hook`), until one lands after the hook has returned
        _in_hook["active"] = True
        try:
            if (
                unraisable.exc_type is not None
                and issubclass(unraisable.exc_type, KeyboardInterrupt)
                and stop_requested()
            ):
                again()
            else:
                previous_hook(unraisable)
        finally:
            _in_hook["active"] = False

    _in_hook["again"] = again
    sys.unraisablehook = redeliver_lost_interrupt
    try:
        yield
        check_stop()
    except KeyboardInterrupt:
        check_stop()
        raise Stopped(signal.SIGINT, "stopped by SIGINT; run the same command again to finish") from None
    finally:
        sys.unraisablehook = previous_hook
        _in_hook["again"] = None
        signal.set_wakeup_fd(previous_fd)
        writer.close()  # the watcher's recv returns b""
        watcher.join()
        reader.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
