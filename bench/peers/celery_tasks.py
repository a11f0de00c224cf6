"""The Celery app of the benchmark (the worker runs `celery -A celery_tasks worker`): Redis as broker and result
backend, one task that runs a command as a subprocess."""

from __future__ import annotations

import os
import subprocess

from celery import Celery


def run(argv: list[str]) -> int:
    return subprocess.run(argv, check=False).returncode


def make_app(url: str) -> Celery:
    app = Celery("peers", broker=url, backend=url)
    app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
    app.task(name="run")(run)
    return app


app = make_app(os.environ.get("PEERS_REDIS_URL", "redis://127.0.0.1:6379"))
