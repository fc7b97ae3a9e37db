"""Partitions: one per animal and session, both added as data arrives."""
import dagster as dg

ANIMALS = dg.DynamicPartitionsDefinition(name="animals")
SESSIONS = dg.DynamicPartitionsDefinition(name="sessions")
SESSION_PARTITIONS = dg.MultiPartitionsDefinition({"animal": ANIMALS, "session": SESSIONS})


def session_partition_key(animal: str, session: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"animal": animal, "session": session})
