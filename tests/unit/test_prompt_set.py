"""The standing prompt set: the shipped file, its digests, and what a bad file gets."""

from __future__ import annotations

import hashlib
import statistics
from pathlib import Path

import pytest

from chain.hashing import TAG_MERKLE_LEAF, TAG_MERKLE_NODE
from chain.merkle import merkle_root
from workloads.exact.prompts import (
    MAX_PROMPT_CHARS,
    PROMPT_SET_FILE,
    load_prompt_set,
    prompt_leaf,
    prompt_set_root,
    prompt_set_sha256,
)

# The set is frozen once released (a new set is a new file), so its digests are pinned
# here: an edit to the file, however small, fails these before it reaches chain params.
V1_SHA256 = "3c848c278cf34e1ea1e0a2e61591be7e049fbd4ba20cf771ccec86ce625b70e0"
V1_ROOT = "c2d5fe7e425c5aac931314cc72000100865ab63a245f2aa270fedb154e13d5ce"

MAX_TOKENS = 40  # a question on its own
MAX_CHAT_TOKENS = 96  # the same question inside SmolLM2's chat template


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    return load_prompt_set()


def test_shipped_set_loads_with_320_distinct_questions(prompts: list[str]) -> None:
    assert len(prompts) == 320
    assert len(set(prompts)) == 320
    assert all(p.endswith("?") for p in prompts)
    assert all(p == p.strip() and 0 < len(p) <= MAX_PROMPT_CHARS for p in prompts)
    assert PROMPT_SET_FILE.read_bytes().endswith(b"?\n")  # one final newline, no blank line


def _reference_root(prompts: list[str]) -> bytes:
    """The root built from the definitions alone: BIP340 tagged SHA-256 written out with
    hashlib, and the tree as RFC 6962 defines it (split at the largest power of two below
    n), which is the tree chain.merkle builds by carrying odd nodes up."""

    def tagged(tag: str, data: bytes) -> bytes:
        t = hashlib.sha256(tag.encode()).digest()
        return hashlib.sha256(t + t + data).digest()

    def root(leaves: list[bytes]) -> bytes:
        if len(leaves) == 1:
            return tagged(TAG_MERKLE_LEAF, leaves[0])
        split = 1
        while split * 2 < len(leaves):
            split *= 2
        return tagged(TAG_MERKLE_NODE, root(leaves[:split]) + root(leaves[split:]))

    return root([hashlib.sha256(p.encode()).digest() for p in prompts])


def test_digests_are_stable(prompts: list[str]) -> None:
    root = prompt_set_root(prompts)
    assert root == prompt_set_root(load_prompt_set(PROMPT_SET_FILE)) == _reference_root(prompts)
    assert root.hex() == V1_ROOT
    assert prompt_set_sha256() == hashlib.sha256(PROMPT_SET_FILE.read_bytes()).digest()
    assert prompt_set_sha256(PROMPT_SET_FILE).hex() == V1_SHA256


def test_root_is_the_inputs_root_of_a_job_over_the_prompts(prompts: list[str]) -> None:
    """A job whose inputs are these prompts (UTF-8 blobs) names the same root."""
    hashes = [hashlib.sha256(p.encode("utf-8")).digest() for p in prompts]
    assert prompt_set_root(prompts) == merkle_root(hashes)
    assert prompt_leaf("Why?") == hashlib.sha256(b"Why?").digest()


def test_root_changes_with_any_edit_or_reordering(prompts: list[str]) -> None:
    root = prompt_set_root(prompts)
    edited = list(prompts)
    edited[123] = edited[123][:-1] + " ?"
    swapped = list(prompts)
    swapped[5], swapped[200] = swapped[200], swapped[5]
    roots = {root, prompt_set_root(edited), prompt_set_root(swapped), prompt_set_root(prompts[:-1])}
    assert len(roots) == 4


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"\n", "line 1: empty line"),
        (b"What is p53?\n\nWhat is MYC?\n", "line 2: empty line"),
        (b"What is p53?\nWhat is MYC?\nWhat is p53?\n", "line 3: duplicate of line 1"),
        (b"What is p53? \n", "line 1: leading or trailing whitespace"),
        (b"What is p53?\n What is MYC?\n", "line 2: leading or trailing whitespace"),
        (b"What is p53?\nWhat is \xff?\n", "not valid UTF-8 at byte 21"),
        (b"What is p53?\r\nWhat is MYC?\r\n", "carriage return"),
        (b"\xef\xbb\xbfWhat is p53?\n", "byte-order mark"),
        (b"What is\tp53?\n", "line 1: contains a control"),
        (
            b"Why?\n" + b"x" * MAX_PROMPT_CHARS + b"?\n",
            f"line 2: {MAX_PROMPT_CHARS + 1} characters",
        ),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "prompts.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=problem):
        load_prompt_set(path)


def test_limits_are_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_bytes(b"x" * MAX_PROMPT_CHARS + b"\nWhy?")  # no final newline is accepted
    assert load_prompt_set(path) == ["x" * MAX_PROMPT_CHARS, "Why?"]


def test_every_prompt_is_short_in_tokens(prompts: list[str], tiny_model) -> None:  # type: ignore[no-untyped-def]
    """The tiny model carries SmolLM2's tokenizer and chat template, so it measures the
    prompts exactly as the lottery's model will see them, without loading SmolLM2."""
    from tokenizers import Tokenizer

    from workloads.exact.sampling import encode_prompt

    tokenizer = Tokenizer.from_str(tiny_model.tokenizer_json.decode())
    raw = [len(tokenizer.encode(p, add_special_tokens=False).ids) for p in prompts]
    chat = [len(encode_prompt(tiny_model, p, chat=True)) for p in prompts]
    too_long = [(n, p) for n, p in zip(raw, prompts, strict=True) if n > MAX_TOKENS]
    assert not too_long
    assert max(chat) <= MAX_CHAT_TOKENS
    assert raw == [len(encode_prompt(tiny_model, p)) for p in prompts]
    assert 10 <= statistics.median(raw) <= 25
