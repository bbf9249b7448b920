"""The operator's state as kopf hands it to every handler: one typed memo.

kopf passes the memo given to ``kopf.run`` to every handler, a shallow copy
per resource object made when kopf first sees that object. So the state is
built once, by the startup handler, before kopf watches any CoreCluster, and
everything that changes later lives inside the :class:`Scheduler` that every
copy refers to; no handler sets an attribute of the memo itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from corescale.operator.process.settings import Settings
from corescale.operator.runtime.scheduler import Scheduler


@dataclass
class State:
    """The settings from the environment, and the running parts once started."""

    settings: Settings
    started: Scheduler | None = None

    @property
    def scheduler(self) -> Scheduler:
        """The running parts; only handlers after startup ask, and startup always ran."""
        if self.started is None:
            raise RuntimeError("the operator's startup handler has not run")
        return self.started
