"""Which partition a stream's events go to: Kafka's own murmur2 rule, computed on our side.

Why this exists: the relay sends each record to `partition_for(stream_id, n)` explicitly, and a
reader
waiting for its own write (read-your-writes) watches that same partition's progress. Both use this
function, so they cannot disagree. It is the Java client's default partitioner for keyed records.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(stream_id: str, partitions: int) -> int:
    """Return the partition of a record keyed by `stream_id` in a topic of `partitions`."""
    if partitions <= 0:
        raise ValueError("a topic has at least one partition")
    hashed: int = murmur2(stream_id.encode("utf-8"))
    return (hashed & 0x7FFFFFFF) % partitions
