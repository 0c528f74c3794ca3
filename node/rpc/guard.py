"""What every request passes before any handler runs: the token, then the size of its body.

Both are plain ASGI middleware rather than FastAPI dependencies, for two reasons. They
must cover everything the app serves, the OpenAPI documents and unknown paths included,
not just the routes that remember to declare a dependency. And they must act *before*
the body is read: FastAPI reads and parses a JSON body before it runs a route's
dependencies, so a dependency could check a token only after a stranger had made us
read (and buffer) whatever they sent.

* :class:`RequireToken` answers ``401 unauthorized`` unless the request carries
  ``Authorization: Bearer <cookie token>``. The comparison is constant-time
  (``hmac.compare_digest``), so response timing tells nothing about how much of a
  guess was right. ``/health`` alone is open, so a supervisor can probe liveness
  without the secret; it reveals nothing else.
* :class:`LimitBody` answers ``413 body-too-large`` when a body is larger than the
  route allows: at once from ``Content-Length``, before reading a byte, and otherwise
  (chunked uploads) as soon as the bytes read pass the limit. Under the limit, the body
  is buffered and handed to the app unchanged, so the app never sees a partial body.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.rpc.errors import BAD_REQUEST, BODY_TOO_LARGE, UNAUTHORIZED, error_response

OPEN_PATHS = frozenset({"/health"})


class RequireToken:
    def __init__(self, app: ASGIApp, token: str) -> None:
        if len(token) < 16:
            raise ValueError("the RPC token must be at least 16 characters")
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(
            UNAUTHORIZED,
            "missing or wrong bearer token (see the .cookie file in the data directory)",
            headers={"WWW-Authenticate": 'Bearer realm="fc"'},
        )
        await response(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                # compare_digest on equal-length inputs only leaks the length, which is public.
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    credentials.strip(), self.expected
                )
        return False


class LimitBody:
    def __init__(
        self, app: ASGIApp, default_limit: int, limits: Mapping[tuple[str, str], int]
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = dict(limits)  # (method, path) -> bytes

    def limit_for(self, method: str, path: str) -> int:
        return self.limits.get((method, path), self.default_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared == -1:
            await error_response(BAD_REQUEST, "Content-Length is not a number")(
                scope, receive, send
            )
            return
        if declared is not None and declared > limit:
            await self._too_large(limit, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(limit, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], then=receive), send)

    @staticmethod
    async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            BODY_TOO_LARGE,
            f"request body larger than {limit} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length, None when absent, -1 when not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            # ASCII digits only (bytes.isdigit is ASCII-only): int() would also take a
            # sign, '_' separators and surrounding whitespace.
            if not value.isdigit():
                return -1
            return int(value)
    return None


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A ``receive`` that yields ``messages`` first, then defers to ``then``."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
