"""A training stops the same way whatever asks it to: Ctrl-C (SIGINT) or ``kill`` (SIGTERM)
raise KeyboardInterrupt, which saves the state. SIGINT is listened to even when the process
started with it ignored, as a shell's background jobs and their children do (``cmd &``, a
studio started that way), so such a training can still be stopped and resumed."""
from __future__ import annotations

import contextlib
import signal
import threading


_requested = False


def _raise_interrupt(signum, frame):
    global _requested
    _requested = True  # a KeyboardInterrupt raised inside a finalizer is swallowed: loops check this too
    raise KeyboardInterrupt


def requested() -> bool:
    """Whether a stop signal came since :func:`stoppable` was entered."""
    return _requested


@contextlib.contextmanager
def stoppable():
    """Inside: SIGINT and SIGTERM raise KeyboardInterrupt; the previous handlers come back after.
    Outside the main thread (signals can only be handled there) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _requested
    _requested = False
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
