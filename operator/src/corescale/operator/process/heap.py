"""Keeping the operator's long-lived objects out of the garbage collector's full passes.

At 1,000 CoreClusters the operator holds about 270,000 objects that the
collector tracks: the children's summaries, kopf's index and its memory of
each CoreCluster. Nearly all of them live as long as their CoreCluster. A
full collection walks every one and holds the event loop meanwhile: 250 to
650 ms on make bench-scale's 2-CPU machine, about once a minute while
CoreClusters change and ten times in the first six seconds of a restart, so
a spec change that arrived during one waited that long.

``gc.freeze()`` moves every tracked object into a permanent generation that
no collection walks; reference counting still frees those that die, so the
summaries a watch replaces go as before. What it gives up: a reference
cycle among frozen objects that dies later is never collected. So the
operator freezes only right after a full collection, when what is tracked
is what is alive, and only when the unfrozen survivors come to a quarter
of the objects frozen already (GROWTH): once per quarter the heap grows or
is replaced (about eight times while 1,000 CoreClusters are listed, then
rarely while their number holds), so the cycles that can be stranded are
the few alive at those moments. A full collection then walks at most a
fifth of the heap.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

GROWTH = 0.25
"""Unfrozen survivors of a full collection, as a share of the frozen objects, that call
for a freeze: a larger share means longer full collections, a smaller one more freezes."""


def keep_long_lived_frozen() -> None:
    """Freeze after a full collection whenever the heap has grown or turned over by GROWTH."""
    if _after_collection not in gc.callbacks:
        gc.callbacks.append(_after_collection)


def _after_collection(phase: str, info: dict[str, int]) -> None:
    if phase != "stop" or info["generation"] != 2:
        return
    survivors = len(gc.get_objects(generation=2))
    frozen = gc.get_freeze_count()
    if survivors > GROWTH * frozen:
        gc.freeze()
        log.debug("froze %d long-lived objects (%d frozen before)", survivors, frozen)
