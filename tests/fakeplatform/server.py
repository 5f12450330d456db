"""A real HTTP server on 127.0.0.1 speaking enough Mastodon and Bluesky for Gristmill.

It runs uvicorn in a background thread of the test process, so worker processes started
by integration tests can reach it over TCP. All state sits behind one lock because tests
change it from their own thread while the server's event loop reads it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakeplatform.accounts import (
    BlueskyAccount,
    MastodonAccount,
    build_bluesky_account,
    build_mastodon_account,
)
from tests.fakeplatform.models import (
    FAKE_MASTODON_DOMAIN,
    FakeFailure,
    FakePost,
    RequestRecord,
)

STARTUP_DEADLINE_SECONDS = 10.0


@dataclass
class _State:
    mastodon: dict[str, MastodonAccount] = field(default_factory=dict)
    mastodon_ids: dict[str, str] = field(default_factory=dict)  # account id -> user
    bluesky: dict[str, BlueskyAccount] = field(default_factory=dict)
    bluesky_dids: dict[str, str] = field(default_factory=dict)  # did -> handle
    failures: dict[str, deque[FakeFailure]] = field(default_factory=dict)
    latency: float = 0.0
    account_latency: dict[str, float] = field(default_factory=dict)
    requests: list[RequestRecord] = field(default_factory=list)
    abandoned: list[tuple[str | None, float]] = field(default_factory=list)
    outage: FakeFailure | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


def _key(handle_or_user: str) -> str:
    """Mastodon "alice@fake.social" and "alice" name the same fake account."""
    if handle_or_user.startswith("did:"):
        return handle_or_user
    return handle_or_user.split("@", 1)[0] if "@" in handle_or_user else handle_or_user


def _mastodon_limit(raw: str | None) -> int:
    # Mastodon clamps rather than rejects: junk means the default, big values mean 40.
    try:
        value = int(raw) if raw is not None else 20
    except ValueError:
        value = 20
    return max(1, min(value, 40))


def _xrpc_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": "InvalidRequest", "message": message}, status_code=status)


class FakePlatform:
    """Fake Mastodon + Bluesky server. Call `start()` once, `reset()` between tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._sequence = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakePlatform is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FakePlatform is already started")
        # Binding the socket ourselves gives a free port known before uvicorn starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        self._socket = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            backlog=2048,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name="fakeplatform",
            daemon=True,
        )
        self._thread.start()
        limit = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("FakePlatform server thread died during start-up")
            if time.monotonic() > limit:
                raise RuntimeError("FakePlatform did not start listening within 10 s")
            # Waiting on the thread returns early if it dies; it is our poll interval.
            self._thread.join(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._port = None

    def reset(self) -> None:
        with self._lock:
            self._state = _State()

    # ---- declaring accounts ----------------------------------------------------------

    def _next_sequence(self) -> int:
        # Called with the lock held.
        self._sequence += 1
        return self._sequence

    def add_mastodon_account(
        self,
        user: str,
        *,
        followers: int,
        following: int,
        statuses: int,
        posts: list[FakePost] | None = None,
    ) -> str:
        """Register `user` (Gristmill handle f"{user}@fake.social"); returns its id."""
        user = _key(user)
        with self._lock:
            account = build_mastodon_account(
                user,
                followers=followers,
                following=following,
                statuses=statuses,
                posts=list(posts or []),
                next_sequence=self._next_sequence,
            )
            self._state.mastodon[user] = account
            self._state.mastodon_ids[account.entity["id"]] = user
        return str(account.entity["id"])

    def add_bluesky_account(
        self,
        handle: str,
        *,
        followers: int,
        follows: int,
        posts_count: int,
        posts: list[FakePost] | None = None,
        pinned: FakePost | None = None,
    ) -> str:
        """Register a Bluesky account; returns its DID.

        `pinned` also appears in date order, as on Bluesky; getAuthorFeed puts it first
        on the first page when asked with includePins=true.
        """
        with self._lock:
            account = build_bluesky_account(
                handle,
                followers=followers,
                follows=follows,
                posts_count=posts_count,
                posts=list(posts or []),
                pinned=pinned,
                next_sequence=self._next_sequence,
            )
            self._state.bluesky[handle] = account
            self._state.bluesky_dids[account.did] = handle
        return account.did

    # ---- failures, latency and the request log
    # -----------------------------------------

    def fail_next(self, handle_or_user: str, responses: list[FakeFailure]) -> None:
        """Answer the account's next requests (any endpoint) with these, in order."""
        with self._lock:
            queue = self._state.failures.setdefault(_key(handle_or_user), deque())
            queue.extend(responses)

    def go_down(self, failure: FakeFailure) -> None:
        """Answer every request with `failure` until `come_back()` (a platform outage)."""
        with self._lock:
            self._state.outage = failure

    def come_back(self) -> None:
        with self._lock:
            self._state.outage = None

    def set_latency(self, seconds: float, handle: str | None = None) -> None:
        """Delay answers globally, or for one account (overriding the global)."""
        with self._lock:
            if handle is None:
                self._state.latency = seconds
            else:
                self._state.account_latency[_key(handle)] = seconds

    def set_response_headers(self, headers: dict[str, str]) -> None:
        """Send these headers with every answer from now on (e.g. RateLimit-Remaining)."""
        with self._lock:
            self._state.extra_headers = dict(headers)

    def request_count(self, handle: str | None = None) -> int:
        with self._lock:
            if handle is None:
                return len(self._state.requests)
            key = _key(handle)
            return sum(1 for record in self._state.requests if record.account == key)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._state.requests)

    # ---- HTTP ------------------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/accounts/lookup", self._mastodon_lookup),
                Route("/api/v1/accounts/{account_id}/statuses", self._mastodon_statuses),
                Route("/xrpc/app.bsky.actor.getProfile", self._bluesky_profile),
                Route("/xrpc/app.bsky.feed.getAuthorFeed", self._bluesky_feed),
                Route("/{path:path}", self._not_found),
            ]
        )

    async def _serve(
        self,
        request: Request,
        account: str | None,
        failure_body: Callable[[int], dict[str, Any]],
        answer: Callable[[], Response],
    ) -> Response:
        with self._lock:
            self._state.requests.append(
                RequestRecord(
                    method=request.method,
                    path=request.url.path,
                    query=dict(request.query_params),
                    timestamp=datetime.now(UTC),
                    account=account,
                )
            )
            queue = self._state.failures.get(account) if account else None
            failure = queue.popleft() if queue else self._state.outage
            latency = self._state.account_latency.get(account or "", self._state.latency)
            extra_headers = dict(self._state.extra_headers)
        if latency > 0 and not await self._wait_unless_abandoned(request, latency, account):
            return Response(status_code=499)
        if failure is not None:
            headers = {**extra_headers, **(failure.headers or {})}
            if failure.retry_after:
                headers["Retry-After"] = failure.retry_after
            body = failure.body if failure.body is not None else failure_body(failure.status)
            return JSONResponse(body, status_code=failure.status, headers=headers or None)
        with self._lock:
            response = answer()
        response.headers.update(extra_headers)
        return response

    async def _wait_unless_abandoned(
        self, request: Request, latency: float, account: str | None
    ) -> bool:
        """Sleep `latency` seconds; False (and recorded) if the client hung up meanwhile."""
        deadline = time.monotonic() + latency
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(min(left, 0.05)):
                    message = await request.receive()
            except TimeoutError:
                continue
            if message["type"] == "http.disconnect":
                with self._lock:
                    self._state.abandoned.append((account, time.monotonic()))
                return False
        return True

    def abandoned(self, handle: str | None = None) -> list[float]:
        """When (time.monotonic()) clients hung up on requests still being answered."""
        with self._lock:
            return [
                at
                for account, at in self._state.abandoned
                if handle is None or account == _key(handle)
            ]

    async def _not_found(self, request: Request) -> Response:
        return JSONResponse({"error": "Not Found"}, status_code=404)

    @staticmethod
    def _mastodon_failure(status: int) -> dict[str, Any]:
        if status == 429:
            return {"error": "Too many requests"}
        return {"error": f"Fake failure (HTTP {status})"}

    @staticmethod
    def _bluesky_failure(status: int) -> dict[str, Any]:
        if status == 429:
            return {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}
        if status >= 500:
            return {"error": "InternalServerError", "message": "Internal Server Error"}
        return {"error": "InvalidRequest", "message": f"Fake failure (HTTP {status})"}

    async def _mastodon_lookup(self, request: Request) -> Response:
        acct = request.query_params.get("acct", "")
        user = _key(acct)

        def answer() -> Response:
            account = self._state.mastodon.get(user)
            if account is None or ("@" in acct and not acct.endswith(FAKE_MASTODON_DOMAIN)):
                return JSONResponse({"error": "Record not found"}, status_code=404)
            return JSONResponse(account.entity)

        return await self._serve(request, user or None, self._mastodon_failure, answer)

    async def _mastodon_statuses(self, request: Request) -> Response:
        account_id = request.path_params["account_id"]
        params = request.query_params
        with self._lock:
            user = self._state.mastodon_ids.get(account_id, account_id)

        def answer() -> Response:
            account = self._state.mastodon.get(user)
            if account is None:
                return JSONResponse({"error": "Record not found"}, status_code=404)
            if params.get("pinned") == "true":
                return JSONResponse([])
            limit = _mastodon_limit(params.get("limit"))
            max_id = int(params["max_id"]) if params.get("max_id", "").isdigit() else None
            chosen = [
                status
                for status in account.statuses
                if (max_id is None or int(status["id"]) < max_id)
                and not (params.get("exclude_reblogs") == "true" and status["reblog"])
                and not (params.get("exclude_replies") == "true" and status["in_reply_to_id"])
            ][:limit]
            headers = {}
            # Like Mastodon, a full page advertises a next page (which may then be
            # empty).
            if chosen and len(chosen) == limit:
                here = f"{request.base_url}api/v1/accounts/{account_id}/statuses"
                headers["Link"] = (
                    f'<{here}?limit={limit}&max_id={chosen[-1]["id"]}>; rel="next", '
                    f'<{here}?limit={limit}&min_id={chosen[0]["id"]}>; rel="prev"'
                )
            return JSONResponse(chosen, headers=headers)

        return await self._serve(request, user, self._mastodon_failure, answer)

    def _bluesky_account(self, actor: str) -> BlueskyAccount | None:
        handle = self._state.bluesky_dids.get(actor, actor)
        return self._state.bluesky.get(handle)

    def _bluesky_key(self, actor: str) -> str:
        with self._lock:
            return self._state.bluesky_dids.get(actor, actor)

    async def _bluesky_profile(self, request: Request) -> Response:
        actor = request.query_params.get("actor", "")

        def answer() -> Response:
            if not actor:
                return _xrpc_error('Error: Params must have the property "actor"')
            account = self._bluesky_account(actor)
            if account is None:
                return _xrpc_error("Profile not found")
            return JSONResponse(account.profile)

        key = self._bluesky_key(actor) or None
        return await self._serve(request, key, self._bluesky_failure, answer)

    async def _bluesky_feed(self, request: Request) -> Response:
        params = request.query_params
        actor = params.get("actor", "")

        def answer() -> Response:
            account = self._bluesky_account(actor)
            if account is None:
                return _xrpc_error("Profile not found")
            try:
                limit = int(params.get("limit", "50"))
            except ValueError:
                return _xrpc_error("Error: limit must be an integer")
            if not 1 <= limit <= 100:
                return _xrpc_error("Error: limit must be between 1 and 100")
            cursor = params.get("cursor")
            offset = 0
            if cursor:
                try:
                    offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()[1:])
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    return _xrpc_error("Malformed cursor")
            items = account.items
            if params.get("filter") == "posts_no_replies":
                items = [item for item in items if "reply" not in item["post"]["record"]]
            page = items[offset : offset + limit]
            body: dict[str, Any] = {"feed": list(page)}
            if not cursor and params.get("includePins") == "true" and account.pinned_item:
                body["feed"].insert(0, account.pinned_item)
            if offset + limit < len(items):
                body["cursor"] = base64.urlsafe_b64encode(f"o{offset + limit}".encode()).decode()
            return JSONResponse(body)

        key = self._bluesky_key(actor) or None
        return await self._serve(request, key, self._bluesky_failure, answer)
