"""Errors the RPC answers with: one JSON shape, stable codes.

Every failure, whatever produced it (our handlers, FastAPI's request validation,
Starlette's routing, the size and auth middleware, an unexpected exception), reaches
the client as::

    {"error": {"code": "not-found", "message": "no block with hash 00ab…"}}

``code`` is stable and meant for programs; ``message`` is one sentence for people and
may change. A transaction the node refuses carries its consensus or policy reject code
(``chain.errors.Reject``, e.g. ``bad-txns-inputs-missingorspent``) as ``code`` and says
which kind of rule it broke in ``rule``, because only a policy refusal may succeed later.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chain.errors import RuleError
from chain.policy import PolicyError

log = logging.getLogger("fc.rpc")

# code -> HTTP status; the codes of specs/rpc.md §3
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not-found"
METHOD_NOT_ALLOWED = "method-not-allowed"
BAD_REQUEST = "bad-request"
BAD_ADDRESS = "bad-address"
BODY_TOO_LARGE = "body-too-large"
REGTEST_ONLY = "regtest-only"
P2P_DISABLED = "p2p-disabled"
NOT_SUPPORTED = "not-supported"
CONNECT_FAILED = "connect-failed"
GENERATE_FAILED = "generate-failed"
INTERNAL = "internal-error"

STATUS = {
    UNAUTHORIZED: 401,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    BAD_REQUEST: 400,
    BAD_ADDRESS: 400,
    BODY_TOO_LARGE: 413,
    REGTEST_ONLY: 403,
    P2P_DISABLED: 503,
    NOT_SUPPORTED: 501,
    CONNECT_FAILED: 502,
    GENERATE_FAILED: 500,
    INTERNAL: 500,
}
TX_REJECTED_STATUS = 422


class ApiError(Exception):
    """Raised by handlers; becomes ``{"error": {...}}`` with the code's status."""

    def __init__(self, code: str, message: str, *, status: int | None = None, **extra: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS[code]
        self.extra = extra


def rejected(exc: RuleError) -> ApiError:
    """The API error for a transaction the core refused."""
    rule = "policy" if isinstance(exc, PolicyError) else "consensus"
    return ApiError(
        exc.code.value, exc.detail or exc.code.value, status=TX_REJECTED_STATUS, rule=rule
    )


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    code: str, message: str, status: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message), status_code=status or STATUS[code], headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    """The first problem as one line: ``body.count: Input should be less than …``."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.code, exc.message, **exc.extra), status_code=exc.status)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(BAD_REQUEST, _validation_message(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # Keep the headers the exception carries: a 405's ``Allow`` above all (RFC 9110).
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 404:
        return error_response(NOT_FOUND, f"no such endpoint: {request.url.path}", headers=headers)
    if exc.status_code == 405:
        return error_response(
            METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {request.url.path}",
            headers=headers,
        )
    code = BAD_REQUEST if 400 <= exc.status_code < 500 else INTERNAL
    return error_response(code, str(exc.detail), status=exc.status_code, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("RPC %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(INTERNAL, f"internal error: {type(exc).__name__}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
