"""Single mode: one process on one CPU, the normal case in a pod."""

from __future__ import annotations

import logging
import os
import socket

from corescale.worker import loops
from corescale.worker.config import Config
from corescale.worker.loader import Factory
from corescale.worker.scoreboard import Scoreboard
from corescale.worker.serving import ServingProcess

log = logging.getLogger(__name__)


def run_single(config: Config, factory: Factory, sock: socket.socket) -> int:
    """Serves on `sock` until a stop signal; the exit code (as PID 1, cli puts an init first)."""
    board = Scoreboard(config.metrics_dir)
    try:
        board.set_workers(1)
        board.claim(0, os.getpid())
        server = ServingProcess(config, factory, sock, board, board.slot(0))
        return int(loops.run(server.run()))
    finally:
        board.close()
        sock.close()
