"""Push updates: /api/events (SSE) and /api/ws (WebSocket) across two api processes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from gristmill.console.streams import StreamHub, Subscription
from tests.fakeplatform import FakePlatform
from tests.support.jobs import register_mastodon, start, wait_for_job
from tests.support.stack import Stack, free_port, wait_until


@dataclass
class Received:
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def add(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append((time.time(), message))

    def of_type(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(t, m) for t, m in self.messages if m["type"] == kind]

    def job_events(self, job_id: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.of_type("job") if m["data"]["job_id"] == job_id]


def _read_sse(url: str, token: str, received: Received, **params: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(timeout=httpx.Timeout(5, read=30)) as client,
        connect_sse(client, "GET", f"{url}/api/events", headers=headers, params=params) as source,
    ):
        for event in source.iter_sse():
            if not event.data:  # the opening "retry:" field carries no message
                continue
            received.add(json.loads(event.data))
            if received.stop.is_set():
                return


def _read_ws(url: str, token: str, received: Received) -> None:
    ws_url = url.replace("http://", "ws://") + "/api/ws"
    with ws_connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as socket:
        while not received.stop.is_set():
            try:
                frame = socket.recv(timeout=0.5)
            except TimeoutError:
                continue
            decoded = json.loads(frame)
            # A frame holds one message, or an array of those that were waiting together.
            for message in decoded if isinstance(decoded, list) else [decoded]:
                if message["type"] != "ping":
                    received.add(message)


@pytest.fixture
def second_api(stack: Stack) -> Iterator[str]:
    """Another api process on the same database and Redis, as a second replica would be."""
    stack.commands["api_replica"] = stack.commands["api"]
    port = free_port()
    stack.start("api_replica", {"PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), timeout=30, what="the second api process to answer /healthz")
    yield url
    stack.kill("api_replica")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _background(target: Any, *args: Any, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


@pytest.mark.integration
def test_a_job_shows_on_both_replicas_streams_within_a_second(
    stack: Stack, stack_api: httpx.Client, second_api: str, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "alice", followers=42)
    sse, ws = Received(), Received()
    threads = [
        _background(_read_sse, stack.api_url, stack.api_token, sse),
        _background(_read_ws, second_api, stack.api_token, ws),
    ]
    wait_until(
        lambda: sse.of_type("snapshot") and ws.of_type("snapshot"),
        timeout=10,
        what="both snapshots",
    )
    job_id = start(stack_api, "/api/jobs/scrape-account/alice")
    assert wait_for_job(stack_api, job_id)["status"] == "completed"
    for received in (sse, ws):
        wait_until(
            lambda r=received: any(  # type: ignore[misc]
                m["data"]["status"] == "completed" for _, m in r.job_events(job_id)
            ),
            timeout=5,
            what="the completed event",
        )
        events = received.job_events(job_id)
        changes = [m["data"]["change"] for _, m in events]
        assert changes[0] == "created"
        assert [m["data"]["status"] for _, m in events][-1] == "completed"
        assert "running" in [m["data"]["status"] for _, m in events]
        # Delivery latency: from the publisher's commit to this client.
        latencies = [t - m["data"]["at"] for t, m in events]
        assert max(latencies) < 1.0, latencies
        ids = [m["id"] for _, m in events]
        assert len(set(ids)) == len(ids)
    sse.stop.set()
    ws.stop.set()
    for thread in threads:
        thread.join(timeout=20)


@pytest.mark.integration
def test_streams_push_queue_and_worker_snapshots(stack: Stack) -> None:
    received = Received()
    _background(_read_sse, stack.api_url, stack.api_token, received)
    wait_until(lambda: received.of_type("workers"), timeout=20, what="a workers message")
    snapshot = received.of_type("snapshot")[0][1]["data"]
    assert {q["name"] for q in snapshot["queues"]["queues"]} == {"high", "default", "low"}
    workers = received.of_type("workers")[-1][1]["data"]["workers"]
    assert {w["pool"] for w in workers} >= {"high", "default", "low"}
    received.stop.set()


@pytest.mark.integration
def test_reconnecting_with_the_last_id_replays_what_was_missed(
    stack: Stack, stack_api: httpx.Client
) -> None:
    first = Received()
    _background(_read_sse, stack.api_url, stack.api_token, first)
    wait_until(lambda: first.of_type("snapshot"), timeout=10, what="the snapshot")
    before = start(stack_api, "/api/jobs/scrape-platform/bluesky")
    wait_until(lambda: first.job_events(before), timeout=5, what="the first job's event")
    last_id = first.job_events(before)[-1][1]["id"]
    first.stop.set()
    # Missed while away: two more jobs.
    missed = [
        start(stack_api, "/api/jobs/scrape-platform/mastodon"),
        start(stack_api, "/api/jobs/scrape-all"),
    ]
    again = Received()
    _background(_read_sse, stack.api_url, stack.api_token, again, resume=last_id)
    wait_until(
        lambda: all(again.job_events(job_id) for job_id in missed),
        timeout=10,
        what="the missed events",
    )
    assert again.messages[0][1]["type"] == "job"  # replayed, no snapshot needed
    assert not again.of_type("snapshot")

    def seq(message_id: str) -> int:
        return int(message_id.rsplit("-", 1)[1])

    # Only what came after the last id seen, in order.
    replayed = [seq(m["id"]) for _, m in again.messages]
    assert replayed == sorted(replayed)
    assert replayed[0] == seq(last_id) + 1
    again.stop.set()
    # An id from another process (or too old) gets a snapshot instead.
    stranger = Received()
    _background(_read_sse, stack.api_url, stack.api_token, stranger, resume="deadbeef-12")
    wait_until(lambda: stranger.messages, timeout=10, what="the first message")
    assert stranger.messages[0][1]["type"] == "snapshot"
    stranger.stop.set()


@pytest.mark.integration
def test_a_stream_filtered_to_one_job_carries_its_result(
    stack: Stack, stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "bob", followers=7)
    register_mastodon(stack_api, fake_platform, "carol")
    fake_platform.set_latency(0.5, "bob")
    job_id = start(stack_api, "/api/jobs/scrape-account/bob")
    other = start(stack_api, "/api/jobs/scrape-account/carol")
    received = Received()
    _background(_read_sse, stack.api_url, stack.api_token, received, job_id=job_id)
    wait_until(
        lambda: any(m["data"]["status"] == "completed" for _, m in received.job_events(job_id)),
        timeout=20,
        what="the completed event",
    )
    snapshot = received.of_type("snapshot")[0][1]["data"]
    assert [job["job_id"] for job in snapshot["jobs"]] == [job_id]
    done = [m for _, m in received.job_events(job_id) if m["data"]["status"] == "completed"][-1]
    assert done["data"]["job"]["result"]["followers"] == 7
    wait_for_job(stack_api, other)
    assert not received.job_events(other)
    received.stop.set()


@pytest.mark.integration
def test_streams_need_a_token(stack: Stack) -> None:
    assert httpx.get(f"{stack.api_url}/api/events").status_code == 401
    bad = httpx.get(
        f"{stack.api_url}/api/events",
        params={"job_id": "nope"},
        headers={"Authorization": f"Bearer {stack.api_token}"},
    )
    assert bad.status_code == 422
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(stack.api_url.replace("http://", "ws://") + "/api/ws", open_timeout=5)
    assert refused.value.response.status_code == 403


def test_a_slow_client_is_resynchronised_without_holding_up_others() -> None:
    async def scenario() -> None:
        hub = StreamHub(
            "redis://127.0.0.1:1/0",
            snapshot=lambda job_id: {"jobs": []},
            status=lambda: {},
            job=lambda job_id: None,
            buffer_size=10,
        )
        async with hub.subscribe(None) as slow, hub.subscribe(None) as fast:
            assert isinstance(slow, Subscription)
            for index in range(25):
                hub.publish("job", {"job_id": str(uuid.uuid4()), "n": index})
                message = await fast.get()  # the fast reader keeps up
                assert message is not None
                assert message.data["n"] == index
            # The slow one overflowed: it is told to resync instead of getting stale events.
            assert await slow.get() is None
            assert slow.dropped >= 15
            assert slow.queue.qsize() == 0
            hub.publish("job", {"job_id": "x", "n": 99})
            message = await slow.get()
            assert message is not None
            assert message.data["n"] == 99
            assert hub.subscribers == 2
        assert hub.subscribers == 0
        replay = hub.replay_after(f"{hub.epoch}-20", None)
        assert replay is not None
        assert [m.data["n"] for m in replay] == [20, 21, 22, 23, 24, 99]
        assert hub.replay_after("other-3", None) is None
        assert hub.replay_after(f"{hub.epoch}-999", None) is None

    asyncio.run(scenario())
