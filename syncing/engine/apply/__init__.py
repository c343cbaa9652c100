"""Apply staged changes in batches, with history, three-way merges and conflicts.

A batch is up to ``batch_size`` changes of one entity and one action. Each batch commits
atomically together with the changes' new state and the run's checkpoint, so a worker killed
mid-run resumes at the first change still ``staged`` and nothing is applied twice or lost.

A row the database refuses (a unique or check constraint the SIS data breaks) does not sink its
batch: the batch is split until the offending row is isolated, and that row is quarantined.
"""

from syncing.engine.apply.batches import apply_batch, creates_partition, next_head
from syncing.engine.apply.context import ApplyContext, policies_load
from syncing.engine.apply.driver import apply_run, even_batch_size
from syncing.engine.apply.updates import writeback_queue

__all__ = [
    "ApplyContext",
    "apply_batch",
    "apply_run",
    "creates_partition",
    "even_batch_size",
    "next_head",
    "policies_load",
    "writeback_queue",
]
