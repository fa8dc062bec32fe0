"""The protected resource: one row per lock in PostgreSQL, written only through a fenced UPDATE.

The fence is the row's ``fence`` column, compared in the same statement that writes: a write
with a token older than the newest accepted one changes nothing. Equal tokens pass (``<=``):
tokens are never reused across leases, so an equal token is the same holder writing again.
Every accepted write also lands in ``accepted`` (append-only, same statement, so same
transaction); ``seq`` is taken under the row lock the UPDATE holds until commit, so per lock it
is the order the writes were accepted in.

``SAFETY_FAULT=unfenced`` (tests only) drops the fence condition, to show the checks catch it.
"""

from __future__ import annotations

import os
from typing import Iterable, List, Tuple

import psycopg

__all__ = ["SCHEMA", "Store", "reset", "accepted_rows", "fault"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS resource (
    name  text PRIMARY KEY,
    fence bigint NOT NULL,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS accepted (
    seq      bigserial PRIMARY KEY,
    lock     text NOT NULL,
    token    bigint NOT NULL,
    client   text NOT NULL,
    write_id text NOT NULL
);
"""

FENCED_WRITE = """
WITH updated AS (
    UPDATE resource SET fence = %(token)s, value = %(value)s
    WHERE name = %(lock)s AND fence <= %(token)s
    RETURNING name
)
INSERT INTO accepted (lock, token, client, write_id)
SELECT name, %(token)s, %(client)s, %(write_id)s FROM updated
"""

# The fault: the same write without the fence, as a resource that trusts the lock would do.
UNFENCED_WRITE = FENCED_WRITE.replace("AND fence <= %(token)s", "")


def fault() -> str:
    """The test-only fault switch, from the environment ("" when off)."""
    value = os.environ.get("SAFETY_FAULT", "")
    if value not in ("", "unfenced"):
        raise ValueError(f"SAFETY_FAULT must be 'unfenced' or unset, got {value!r}")
    return value


class Store:
    """One autocommit connection; ``write`` answers True (accepted) or False (refused)."""

    def __init__(self, conninfo: str) -> None:
        self.connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
        self.statement = UNFENCED_WRITE if fault() == "unfenced" else FENCED_WRITE

    def write(self, lock: str, token: int, client: str, write_id: str) -> bool:
        with self.connection.cursor() as cursor:
            cursor.execute(self.statement, {"lock": lock, "token": token, "client": client,
                                            "write_id": write_id, "value": f"{client}:{write_id}"})
            return cursor.rowcount == 1

    def close(self) -> None:
        self.connection.close()


def reset(conninfo: str, locks: Iterable[str]) -> None:
    """Creates the tables if needed and empties them, with one row per lock at fence 0."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(SCHEMA)
        connection.execute("TRUNCATE resource, accepted RESTART IDENTITY")
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO resource (name, fence, value) VALUES (%s, 0, '')", [(lock,) for lock in locks])


def accepted_rows(conninfo: str) -> List[Tuple[int, str, int, str, str]]:
    """Every accepted write, in acceptance order: (seq, lock, token, client, write_id)."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        return list(connection.execute("SELECT seq, lock, token, client, write_id FROM accepted ORDER BY seq"))
