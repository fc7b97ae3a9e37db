"""Partitions: one per landed session (`animal/session`) and one per animal, added as data arrives.

Only sessions that landed are partitions: there is no animal x session cross
product, so no partition stands for a session that was never imaged. Dagster
has no built-in mapping from an animal to the sessions whose key starts with
it, so the animal assets declare their session inputs with
`AllPartitionMapping` (the lineage graph shows the edge) and run from
`animal_sensor`, which requests an animal once every session of that animal
has its features; which sessions belong to the animal is read from the keys.
"""

import dagster as dg

from ..imaging.keys import validate_key

ANIMALS_NAME, SESSIONS_NAME = "animals", "animal_sessions"
ANIMALS = dg.DynamicPartitionsDefinition(name=ANIMALS_NAME)
SESSIONS = dg.DynamicPartitionsDefinition(name=SESSIONS_NAME)
SESSIONS_OF_ANIMAL = dg.AllPartitionMapping()
"""Mapping of an animal asset to its session inputs (see the module docstring)."""

SEPARATOR = "/"


def session_partition_key(animal: str, session: str) -> str:
    """`animal/session`: the partition key of one landed session."""
    return f"{validate_key(animal, 'animal')}{SEPARATOR}{validate_key(session, 'session')}"


def split_session_key(key: str) -> tuple[str, str]:
    """`(animal, session)` of a session partition key; ValueError for anything else."""
    animal, sep, session = str(key).partition(SEPARATOR)
    if not sep:
        raise ValueError(f"invalid session partition {key!r}: expected 'animal{SEPARATOR}session'")
    return validate_key(animal, "animal"), validate_key(session, "session")


def sessions_of(instance: dg.DagsterInstance, animal: str) -> list[str]:
    """Session partition keys of one animal that are registered in `instance`."""
    prefix = f"{animal}{SEPARATOR}"
    return [key for key in instance.get_dynamic_partitions(SESSIONS_NAME) if key.startswith(prefix)]


def _missing(instance: dg.DagsterInstance, pairs) -> tuple[list[str], list[str]]:
    """Animal keys and session keys of `(animal, session)` pairs that are not registered yet."""
    pairs = sorted(set(pairs))
    animals = sorted({a for a, _ in pairs} - set(instance.get_dynamic_partitions(ANIMALS_NAME)))
    known = set(instance.get_dynamic_partitions(SESSIONS_NAME))
    return animals, [k for k in (session_partition_key(a, s) for a, s in pairs) if k not in known]


def register_sessions(instance: dg.DagsterInstance, pairs) -> None:
    """Add the animal and session partitions of `(animal, session)` pairs that are not there yet."""
    animals, keys = _missing(instance, pairs)
    for name, wanted in ((ANIMALS_NAME, animals), (SESSIONS_NAME, keys)):
        if wanted:
            _add(instance, name, wanted)


def _add(instance: dg.DagsterInstance, name: str, keys: list[str]) -> None:
    """Add dynamic partitions; another process adding the same keys at the same moment is not an error."""
    try:
        instance.add_dynamic_partitions(name, keys)
    except Exception:
        missing = set(keys) - set(instance.get_dynamic_partitions(name))
        if missing:
            raise


def add_requests(instance: dg.DagsterInstance, pairs) -> list[dg.AddDynamicPartitionsRequest]:
    """The sensor form of :func:`register_sessions`: requests for the partitions not registered yet."""
    animals, keys = _missing(instance, pairs)
    return [
        r
        for r in (
            ANIMALS.build_add_request(animals) if animals else None,
            SESSIONS.build_add_request(keys) if keys else None,
        )
        if r is not None
    ]
