"""A schemathesis check of our own, loaded by the fuzzing run (SCHEMATHESIS_HOOKS).

Every error answer must be `{"error": <kind>, "detail": <what is wrong>}`: the detail a
non-empty message, or a non-empty list of problems that each name a location and a message.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis import Case
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response


@schemathesis.check
def error_body_says_what_is_wrong(ctx: CheckContext, response: Response, case: Case) -> bool:
    if response.status_code < 400:
        return True
    try:
        body: Any = json.loads(response.content or b"")
    except ValueError as exc:
        raise AssertionError(f"error body is not JSON: {response.content[:500]!r}") from exc
    if not isinstance(body, dict) or set(body) != {"error", "detail"}:
        raise AssertionError(f"error body is not {{error, detail}}: {body!r}")
    if not isinstance(body["error"], str) or not body["error"]:
        raise AssertionError(f"error kind missing: {body!r}")
    detail = body["detail"]
    if isinstance(detail, list):
        named = bool(detail) and all(
            isinstance(problem, dict) and problem.get("location") and problem.get("message")
            for problem in detail
        )
        if not named:
            raise AssertionError(f"error detail does not name the problem: {body!r}")
    elif not isinstance(detail, str) or not detail.strip():
        raise AssertionError(f"error detail is empty: {body!r}")
    return True
