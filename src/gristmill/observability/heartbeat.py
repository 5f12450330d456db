"""Worker liveness: a record in the broker Redis for the cluster collector, a file for the probe.

Each worker main process rewrites `gristmill:workers:<nodename>` on every Celery heartbeat
(~2 s) with a TTL, and keeps the nodename in the set `gristmill:workers` so the collector finds
every record without scanning the keyspace. The record's age is measured with Redis's own clock
(the TTL already used up), so clock skew between a worker pod and an api pod cannot make a live
worker look dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

WORKER_INDEX_KEY = "gristmill:workers"
WORKER_KEY_PREFIX = "gristmill:workers:"
# Long enough that a worker which vanished without shutting down (OOM kill, node loss) is
# reported as down (celery_worker_up 0) for several minutes before its series disappears.
RECORD_TTL_SECONDS = 600
# A worker is up while its last heartbeat is younger than this many heartbeat intervals.
MISSED_HEARTBEATS = 3


@dataclass(frozen=True)
class WorkerRecord:
    hostname: str
    queues: tuple[str, ...]
    active: int
    concurrency: int
    interval_seconds: float
    last_heartbeat: float
    age_seconds: float

    @property
    def up(self) -> bool:
        return self.age_seconds <= MISSED_HEARTBEATS * self.interval_seconds


def worker_key(hostname: str) -> str:
    return f"{WORKER_KEY_PREFIX}{hostname}"


def write_worker_record(
    client: redis.Redis,
    *,
    hostname: str,
    queues: Sequence[str],
    active: int,
    concurrency: int,
    interval_seconds: float,
    now: float,
    ttl_seconds: int = RECORD_TTL_SECONDS,
) -> None:
    key = worker_key(hostname)
    # One MULTI so the collector never sees a record without its TTL or missing from the index.
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            "hostname": hostname,
            "queues": ",".join(queues),
            "active": active,
            "concurrency": concurrency,
            "interval": interval_seconds,
            "ttl": ttl_seconds,
            "last_heartbeat": now,
        },
    )
    pipe.expire(key, ttl_seconds)
    pipe.sadd(WORKER_INDEX_KEY, hostname)
    pipe.execute()


def delete_worker_record(client: redis.Redis, hostname: str) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.delete(worker_key(hostname))
    pipe.srem(WORKER_INDEX_KEY, hostname)
    pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(fields: dict[str, str], pttl_ms: int, now: float) -> WorkerRecord:
    ttl = float(fields.get("ttl", RECORD_TTL_SECONDS))
    last = float(fields.get("last_heartbeat", 0))
    # PTTL is -1 only if someone removed the expiry by hand; fall back to the worker's clock.
    age = ttl - pttl_ms / 1000 if pttl_ms >= 0 else now - last
    return WorkerRecord(
        hostname=fields["hostname"],
        queues=tuple(q for q in fields.get("queues", "").split(",") if q),
        active=int(fields.get("active", 0)),
        concurrency=int(fields.get("concurrency", 0)),
        interval_seconds=float(fields.get("interval", 2.0)),
        last_heartbeat=last,
        age_seconds=max(age, 0.0),
    )


def read_worker_records(client: redis.Redis, *, now: float) -> list[WorkerRecord]:
    """Every worker record still in Redis; index entries whose record expired are dropped."""
    members = sorted(_text(m) for m in client.smembers(WORKER_INDEX_KEY))
    if not members:
        return []
    pipe = client.pipeline(transaction=False)
    for hostname in members:
        pipe.hgetall(worker_key(hostname))
        pipe.pttl(worker_key(hostname))
    replies = pipe.execute()
    records: list[WorkerRecord] = []
    expired: list[str] = []
    for index, hostname in enumerate(members):
        raw: dict[bytes | str, bytes | str] = replies[2 * index]
        if not raw:
            expired.append(hostname)
            continue
        fields = {_text(k): _text(v) for k, v in raw.items()}
        records.append(_parse(fields, int(replies[2 * index + 1]), now))
    if expired:
        # A worker that re-registers right now is re-added by its next heartbeat (~2 s).
        client.srem(WORKER_INDEX_KEY, *expired)
    return records


def touch_heartbeat_file(path: Path) -> None:
    """Refresh the file's mtime; the Kubernetes liveness probe fails once it is > 60 s old."""
    path.touch(exist_ok=True)
