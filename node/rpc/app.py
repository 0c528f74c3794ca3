"""Building the FastAPI app: routes, error handlers, token and size guards, metrics.

Layers, outermost first, as a request meets them:

1. :class:`~node.rpc.guard.RequireToken`: no bearer token, no further (``/health``
   excepted);
2. :class:`~node.rpc.guard.LimitBody`: bodies over the route's limit are refused before
   they are read;
3. FastAPI: routing, validation of parameters and bodies against ``schemas``, the
   handlers of ``routes``, and ``errors``' handlers turning every failure into the one
   JSON error shape.

The OpenAPI document (``/openapi.json``, rendered at ``/docs``) declares the bearer
scheme globally, and none for ``/health``, which is exactly what the guard enforces.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from chain.schnorr import pubkey_of
from chain.transaction import MAX_TX_SIZE
from node.rpc.context import RpcContext
from node.rpc.errors import install_error_handlers
from node.rpc.guard import OPEN_PATHS, LimitBody, RequireToken
from node.rpc.metrics import make_registry
from node.rpc.routes import VERSION, router

DEFAULT_BODY_LIMIT = 16 * 1024  # bytes: every JSON body but a transaction's is tiny
# A transaction's hex is twice its size, plus the JSON around it.
BODY_LIMITS = {("POST", "/tx"): 2 * MAX_TX_SIZE + 1024}
GENERATE_KEY_FILE = "generate.key"

DESCRIPTION = """\
The Foundation Coin node's HTTP API. Every endpoint but `/health` requires
`Authorization: Bearer <token>`, with the token from the `.cookie` file in the node's
data directory. Errors are `{"error": {"code": ..., "message": ...}}`; see specs/rpc.md.
"""


def load_generate_key(datadir: Path | None) -> bytes:
    """The producer secret regtest's ``/generate`` signs with.

    Kept in ``DATADIR/generate.key`` (hex, mode 0600) so coins mined to the node's own
    key stay spendable across restarts; without a data directory it lives in memory.
    """
    if datadir is None:
        return secrets.token_bytes(32)
    path = datadir / GENERATE_KEY_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secret.hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return secret
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise ValueError(f"{path} does not hold a 32-byte hex key; delete it to make a new one")
    return secret


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "cookie": {"type": "http", "scheme": "bearer", "description": "DATADIR/.cookie"}
            }
            schema["security"] = [{"cookie": []}]
            for path in OPEN_PATHS:
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(ctx: RpcContext) -> FastAPI:
    """The node's RPC app over ``ctx``; serve it with :func:`node.rpc.serve_rpc`."""
    app = FastAPI(
        title="Foundation Coin node",
        version=VERSION,
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.registry = make_registry(ctx)
    secret = load_generate_key(ctx.datadir)
    app.state.producer_secret = secret
    app.state.producer_key = pubkey_of(secret)
    install_error_handlers(app)
    app.include_router(router)
    _install_openapi(app)
    # add_middleware wraps: the last added is the outermost, so the token comes first.
    app.add_middleware(LimitBody, default_limit=DEFAULT_BODY_LIMIT, limits=BODY_LIMITS)
    app.add_middleware(RequireToken, token=ctx.token)
    return app
