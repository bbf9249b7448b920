"""Fixtures of the worker tests (the helpers are in workerproc.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from workerproc import StartWorker, worker_starter


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Starts corescale-worker processes; kills whatever is left at the end of the test."""
    with worker_starter(tmp_path) as start:
        yield start
