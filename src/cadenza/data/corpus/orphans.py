"""Child processes die with their parent: a training killed by SIGKILL, the OOM killer or
a CI timeout must not leave workers behind (each holds memory and the parent's stdout, so
``cadenza train ... | tee log`` would never return), nor a killed studio its trainings."""
from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_S = 0.5


def die_with_parent(parent: int) -> None:
    """Call in a freshly started worker: on Linux the kernel sends it SIGKILL when the
    parent dies (prctl PR_SET_PDEATHSIG); elsewhere a daemon thread polls the parent.
    A parent that died before this call is caught by the check that follows."""
    if not (sys.platform.startswith("linux") and _set_pdeathsig()):
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()
    if os.getppid() != parent:
        os._exit(1)


def _set_pdeathsig() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(1)


def module_command(module: str, args: list[str]) -> list[str]:
    """The command line of ``python -m MODULE ARGS`` that ends when this process dies. The
    child watches this process's pid itself: prctl's "parent" is the thread that started
    the child, and a server's worker thread may end long before the server does."""
    return [sys.executable, "-c", "from cadenza.data.corpus.orphans import _run_watched; _run_watched()",
            str(os.getpid()), module, *args]


def _run_watched() -> None:
    """The child's side of :func:`module_command` (``sys.argv``: PARENT MODULE ARGS...)."""
    parent, module = int(sys.argv[1]), sys.argv[2]
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()
    if os.getppid() != parent:
        os._exit(1)
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
