"""What a reconcile left behind, for the caller to retry or give up on."""

from __future__ import annotations

from dataclasses import dataclass

from corescale.operator.runtime.kube import KubeError

TRANSIENT_DELAY = 5.0
"""Seconds before a reconcile that failed on an API error that may pass by itself runs again."""


@dataclass(frozen=True)
class Outcome:
    """How a reconcile ended: fine, or an error and whether time or a new spec may help."""

    error: str | None = None
    transient: bool = False
    """The same call may work in a moment (timeouts, conflicts, overload)."""
    invalid: bool = False
    """Only a new spec can help."""

    @classmethod
    def of(cls, exc: KubeError) -> Outcome:
        """The outcome of a reconcile that an API call ended."""
        return cls(exc.message, exc.transient)

    @property
    def result(self) -> str:
        """The ``result`` label of the reconcile counter."""
        if self.error is None:
            return "ok"
        return "invalid" if self.invalid else "transient" if self.transient else "error"

    @property
    def retry(self) -> bool:
        """Worth another run without a new event: it failed for a reason outside the spec."""
        return self.error is not None and not self.invalid
