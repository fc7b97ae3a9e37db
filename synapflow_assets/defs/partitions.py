"""Partitions: one per animal and session, both added as data arrives."""
import warnings

import dagster as dg

ANIMALS = dg.DynamicPartitionsDefinition(name="animals")
SESSIONS = dg.DynamicPartitionsDefinition(name="sessions")
SESSION_PARTITIONS = dg.MultiPartitionsDefinition({"animal": ANIMALS, "session": SESSIONS})

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    BY_ANIMAL = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="animal")
"""An animal partition depends on every session partition of that animal."""


def session_partition_key(animal: str, session: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"animal": animal, "session": session})
