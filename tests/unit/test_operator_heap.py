"""The operator's long-lived objects are frozen out of full collections, once per growth."""

import gc
from collections.abc import Iterator

import pytest

from corescale.operator.process import heap


@pytest.fixture
def frozen_after_collections() -> Iterator[None]:
    gc.collect()
    gc.freeze()  # what the test process holds already counts as frozen
    heap.keep_long_lived_frozen()
    heap.keep_long_lived_frozen()  # twice is once
    try:
        yield
    finally:
        gc.callbacks.remove(heap._after_collection)
        gc.unfreeze()


def test_a_grown_heap_is_frozen_after_a_full_collection(frozen_after_collections: None) -> None:
    assert gc.callbacks.count(heap._after_collection) == 1
    before = gc.get_freeze_count()
    kept = [{"n": [i]} for i in range(int(before * heap.GROWTH) + 10_000)]
    gc.collect(1)
    assert gc.get_freeze_count() == before  # young collections freeze nothing
    gc.collect(2)
    assert gc.get_freeze_count() >= before + 2 * len(kept)
    assert not gc.get_objects(generation=2)


def test_a_small_growth_is_left_to_the_collector(frozen_after_collections: None) -> None:
    before = gc.get_freeze_count()
    kept = [{"n": [i]} for i in range(int(before * heap.GROWTH / 4))]
    gc.collect(2)
    assert gc.get_freeze_count() == before
    assert len(gc.get_objects(generation=2)) >= 2 * len(kept)


def test_frozen_objects_are_still_freed_when_they_die(frozen_after_collections: None) -> None:
    kept = [{"n": [i]} for i in range(int(gc.get_freeze_count() * heap.GROWTH) + 10_000)]
    gc.collect(2)
    frozen = gc.get_freeze_count()
    del kept
    assert gc.get_freeze_count() < frozen - 10_000
