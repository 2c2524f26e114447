"""Ctrl-C while the ``cadenza`` command starts ends it with one line and exit code 130.

Importing torch and the rest takes seconds, and it runs before any of the command's own
code: a KeyboardInterrupt there would print a 30-line traceback that no ``try`` in
``main`` can catch. The package calls :func:`guard` before importing anything else; it
acts only when this process is the command (``cadenza`` or ``python -m cadenza``), so a
notebook or script importing cadenza keeps Python's Ctrl-C. ``main`` calls
:func:`release` when the command starts, and from then on turns a KeyboardInterrupt into
the same line itself.
"""
from __future__ import annotations

import os
import re
import signal
import sys


def _interrupted(signum, frame) -> None:
    try:
        os.write(2, b"cadenza: interrupted\n")
    finally:
        os._exit(130)  # nothing is written yet; unwinding half-done imports could only print more


def _is_command() -> bool:
    """Whether this process runs the ``cadenza`` command: its console script, or
    ``python -m cadenza`` (Python names ``-m`` as argv[0] while it imports the package)."""
    if not sys.argv:
        return False
    if sys.argv[0] == "-m":
        argv = list(getattr(sys, "orig_argv", []))
        return any(a == "-m" and b in ("cadenza", "cadenza.__main__") for a, b in zip(argv, argv[1:]))
    workers = sys.modules.get("multiprocessing.process")  # a spawned worker is handed the parent's argv
    if workers is not None and workers.current_process().name != "MainProcess":
        return False
    return re.sub(r"(-script\.pyw?|\.exe)?$", "", os.path.basename(sys.argv[0])) == "cadenza"


def guard() -> None:
    """In the command, until :func:`release`: SIGINT prints one line and exits with 130.
    A SIGINT the process was started ignoring (a background job) stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler and _is_command():
        try:
            signal.signal(signal.SIGINT, _interrupted)
        except ValueError:  # imported outside the main thread: not the command's start
            pass


def release() -> None:
    """Ctrl-C raises KeyboardInterrupt again, as Python's default handler does."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)
