"""What ``brokergraph serve`` does to Python's collector once serving
(``gateway.runner.tune_garbage_collector``), in a process of its own: the collector's
settings are process-wide, and this test process must keep its own."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, weakref
from gateway.runner import MIDDLE_COLLECTION_EVERY, YOUNG_COLLECTION_ALLOCATIONS
from gateway.runner import tune_garbage_collector

class Node:
    pass

kept = Node()
garbage = Node()
garbage.self = garbage  # a cycle: only the collector frees it
dead = weakref.ref(garbage)
del garbage
tune_garbage_collector()
print(json.dumps({
    "threshold": gc.get_threshold()[:2],
    "wanted": [YOUNG_COLLECTION_ALLOCATIONS, MIDDLE_COLLECTION_EVERY],
    "frozen": gc.get_freeze_count(),
    "garbage_freed": dead() is None,
    "kept_frozen": not gc.is_tracked(kept) or kept not in gc.get_objects(),
}))
"""


def test_the_start_is_frozen_after_its_garbage_is_freed_and_young_collections_spaced() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(ran.stdout)
    assert seen["threshold"] == seen["wanted"]
    assert seen["threshold"][0] > 700  # Python's default young threshold
    # The start's objects are out of every later collection's walk...
    assert seen["frozen"] > 10_000
    assert seen["kept_frozen"]
    # ...and what was already unreachable was collected first, not frozen for good.
    assert seen["garbage_freed"]
