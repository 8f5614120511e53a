"""The worker's garbage-collector settings (`cargobay.gctune`)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cargobay import gctune


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gctune._settled_doors.clear()


def test_tune_freezes_what_start_up_made_and_raises_gen0(restored: None) -> None:
    kept = [object() for _ in range(10)], {"long": "lived"}
    gctune.tune()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == gctune.GEN0_THRESHOLD
    assert gc.get_count()[2] == 0  # nothing left in generation 2 to walk
    assert kept


def test_settle_freezes_a_door_once(restored: None) -> None:
    gc.unfreeze()
    gctune.settle("ecr")
    frozen = gc.get_freeze_count()
    assert frozen > 0
    gc.unfreeze()
    gctune.settle("ecr")  # the second call of the same door does nothing
    assert gc.get_freeze_count() == 0
    gctune.settle("signer")
    assert gc.get_freeze_count() > 0


def test_frozen_objects_are_still_freed_by_reference_counting(restored: None) -> None:
    class Box:
        pass

    box = Box()
    gctune.tune()
    assert gc.is_tracked(box)
    ref = weakref.ref(box)
    del box
    assert ref() is None
