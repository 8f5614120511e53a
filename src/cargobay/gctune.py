"""Keep Python's cyclic garbage collector out of a serving worker's latency tail.

A worker holds a few hundred thousand long-lived objects (SQLAlchemy's tables and compiled
statements, botocore's service models once an AWS door has loaded, the application itself).
CPython's full (generation 2) collection walks all of them: measured here at 30-170 ms on a
loaded 2-core machine, a pause every request in flight waits out, and the source of the ECR
API's p99 at c=32. Nothing among those objects ever becomes garbage, so:

- once a worker has started (and again when a lazily loaded door has brought its modules in),
  `settle()` moves every object then alive into the permanent generation (`gc.freeze`), which
  collections never walk; objects keep being freed by reference counting as before, only a
  reference cycle among them would stay;
- generation 0 is collected every `GEN0_THRESHOLD` net allocations instead of 700: a request's
  objects are mostly gone by then, so fewer survivors are promoted and walked again later.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 20_000

_settled_doors: set[str] = set()


def tune() -> None:
    """At a worker's start, once it is ready to serve: collect what start-up left, freeze the
    rest, and raise the generation-0 threshold."""
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def settle(door: str) -> None:
    """After a door's first call has imported its modules: freeze them too (once per door).
    No collection first: it would pause the calls in flight; what start-up garbage the freeze
    keeps is a one-time, bounded cost."""
    if door in _settled_doors:
        return
    _settled_doors.add(door)
    gc.freeze()
