"""The RPC cookie: a fresh random token at each start, readable by the node's user only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.auth import COOKIE_FILE, CookieError, read_cookie, write_cookie
from node.rpc.guard import RequireToken


def test_each_start_writes_a_new_private_token(tmp_path: Path) -> None:
    first = write_cookie(tmp_path)
    path = tmp_path / COOKIE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and int(first, 16) >= 0
    assert read_cookie(tmp_path) == first
    second = write_cookie(tmp_path)
    assert second != first and read_cookie(tmp_path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [COOKIE_FILE]  # no temporary left


def test_a_leftover_temporary_file_does_not_block_the_start(tmp_path: Path) -> None:
    leftover = tmp_path / (COOKIE_FILE + ".tmp")
    leftover.write_text("half a token")
    os.chmod(leftover, 0o644)
    token = write_cookie(tmp_path)
    assert read_cookie(tmp_path) == token and not leftover.exists()


def test_missing_or_empty_cookies_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CookieError, match="no RPC cookie at"):
        read_cookie(tmp_path)
    (tmp_path / COOKIE_FILE).write_text("\n")
    with pytest.raises(CookieError, match="is empty"):
        read_cookie(tmp_path)


def test_a_short_token_is_refused_when_the_app_is_built() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        RequireToken(lambda scope, receive, send: None, "short")  # type: ignore[arg-type, return-value]
