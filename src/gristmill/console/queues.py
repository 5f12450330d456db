"""Queue depth (every priority list of a queue) and the age of the oldest waiting message."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from gristmill.celery_app import redis_list_names
from gristmill.observability.cluster import ALL_QUEUES, read_queue_lengths
from gristmill.observability.publish import SENT_AT_HEADER


@dataclass(frozen=True)
class QueueStatus:
    name: str
    depth: int
    # Seconds since the oldest waiting message was published; None when the queue is empty or
    # its oldest message carries no publish time (sent by a process without the publish hook).
    oldest_age_seconds: float | None
    # Unix time the oldest waiting message was published (so a display can keep ageing it).
    oldest_sent_at: float | None


def _sent_at(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        message = json.loads(raw)
        return float(message["headers"][SENT_AT_HEADER])
    except (ValueError, KeyError, TypeError):
        return None


def read_queues(client: redis.Redis, queues: Sequence[str] = ALL_QUEUES) -> list[QueueStatus]:
    """Depth and oldest-message age of each queue, in two Redis round trips."""
    depths = read_queue_lengths(client, queues)
    # kombu LPUSHes and workers BRPOP: the oldest message of each priority list is its tail.
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for name in redis_list_names(queue):
            pipe.lindex(name, -1)
    tails = iter(pipe.execute())
    redis_now = _redis_time(client)
    statuses = []
    for queue in queues:
        sent = [_sent_at(next(tails)) for _ in redis_list_names(queue)]
        known = [value for value in sent if value is not None]
        sent_at = min(known) if known else None
        oldest = round(max(redis_now - sent_at, 0.0), 3) if sent_at is not None else None
        statuses.append(QueueStatus(queue, depths[queue], oldest, sent_at))
    return statuses


def _redis_time(client: redis.Redis) -> float:
    # The publishers stamp their own clock; Redis's clock is the one reference every api
    # replica shares, so ages read the same from every replica.
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1_000_000
