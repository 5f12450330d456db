"""The CLI's REST client: GRISTMILL_URL and GRISTMILL_TOKEN, and errors a person can act on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from gristmill import __version__

TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class CliError(Exception):
    """A failure to report in one line and exit non-zero."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ApiClient:
    def __init__(self, url: str, token: str | None, *, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._token = token
        headers = {"User-Agent": f"gristmill-cli/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise CliError(f"GRISTMILL_URL {url!r} is not a valid http(s) URL") from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a successful answer (None for 204); raises CliError otherwise."""
        response = self._send(method, path, **kwargs)
        if response.status_code == 204:
            return None
        return self._json(response)

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def post_with_status(
        self, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """POST, and the status code too (a start answers 200 when it returns an identical
        job that is already pending or running instead of creating one)."""
        response = self._send("POST", path, json=body, params=params or {})
        return response.status_code, self._json(response)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    @contextmanager
    def events(self, **params: str) -> Iterator[EventSource]:
        """The api's Server-Sent Events stream (see the README's Streams section)."""
        stream_timeout = httpx.Timeout(TIMEOUT.connect, read=60.0)
        try:
            with self._http.stream(
                "GET",
                "/api/events",
                params=params,
                headers={"Accept": "text/event-stream"},
                timeout=stream_timeout,
            ) as response:
                if response.status_code != 200:
                    response.read()
                    self._raise_for(response)
                yield EventSource(response)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        except SSEError as exc:
            raise CliError(f"{self.url} did not answer with an event stream: {exc}") from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if not self._token:
            raise CliError(
                "no API token: set GRISTMILL_TOKEN to a token from API_TOKENS "
                "(or API_READ_TOKENS for read-only use)"
            )
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_success:
            return response
        self._raise_for(response)
        raise AssertionError("unreachable")

    def _unreachable(self, exc: httpx.TransportError) -> CliError:
        if isinstance(exc, httpx.UnsupportedProtocol):
            return CliError(f"GRISTMILL_URL {self.url!r} is not a valid http(s) URL")
        kind = {
            httpx.ConnectError: "connection failed",
            httpx.ConnectTimeout: "connection timed out",
            httpx.ReadTimeout: "no answer in time",
        }.get(type(exc), type(exc).__name__)
        return CliError(
            f"cannot reach the Gristmill api at {self.url} ({kind}); is it running, "
            "and is GRISTMILL_URL right?"
        )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            content_type = response.headers.get("content-type", "no content type")
            raise CliError(
                f"{self.url} answered HTTP {response.status_code} ({content_type}), not like a "
                "Gristmill api; is GRISTMILL_URL right?"
            ) from exc

    def _raise_for(self, response: httpx.Response) -> None:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or "error" not in body:
            raise CliError(
                f"{self.url} answered HTTP {response.status_code} without a Gristmill error "
                "body; is GRISTMILL_URL right?"
            )
        detail = body.get("detail")
        if isinstance(detail, list):  # validation problems: "location: message" each
            detail = "; ".join(
                f"{item.get('location', '?')}: {item.get('message', item)}"
                if isinstance(item, dict)
                else str(item)
                for item in detail
            )
        status = response.status_code
        if status == 401:
            raise CliError(
                f"the api refused the token ({detail}); set GRISTMILL_TOKEN to a token from "
                "API_TOKENS or API_READ_TOKENS"
            )
        if status == 403:
            raise CliError(f"not allowed: {detail}")
        if status == 404 and (
            body.get("error") != "not_found" or str(detail).startswith("no route ")
        ):
            # No such route: the URL points somewhere else than a Gristmill api root.
            raise CliError(
                f"{self.url} has no {response.request.url.path}; is GRISTMILL_URL right?"
            )
        if status == 404:
            raise CliError(f"not found: {detail}")
        if status >= 500:
            raise CliError(f"the api could not answer (HTTP {status}): {detail}")
        raise CliError(str(detail))
