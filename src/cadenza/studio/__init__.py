"""``cadenza studio``: a local web app to generate, see, listen and pick (see app.py)."""
from __future__ import annotations

import secrets
import threading
import webbrowser
from pathlib import Path

from ..errors import printable


def serve(runs: Path, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True,
          work: Path | None = None, corpora=()) -> None:
    """Serve the studio until Ctrl-C; pieces, their history and uploaded corpora live in
    ``work`` (default ``RUNS/.studio``: kept across restarts, beside the models they were made
    with, and never listed as a model); trainings may read folders under ``corpora``. Bound
    to anything but this machine, every request needs the launch token, and the printed URL
    carries it."""
    import uvicorn

    from .app import create_app
    from .guard import is_loopback

    network = not is_loopback(host)
    token = secrets.token_urlsafe(32)
    work = Path(runs) / ".studio" if work is None else Path(work)
    app = create_app(Path(runs), work, token=token, network=network, bound=host, corpora=corpora)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/" + (f"?token={token}" if network else "")
    print(f"cadenza studio: {url} (models from {printable(Path(runs).resolve())}; Ctrl-C to stop)", flush=True)
    if network:
        print(f"cadenza studio: listening on {host}, reachable from other machines: every request needs the "
              "token in this URL; share it only with people who may train and generate here", flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        for training in app.state.studio.trainings.values():  # Ctrl-C for each: its state is saved
            training.stop()
        for training in app.state.studio.trainings.values():
            training.proc.wait(timeout=60)
