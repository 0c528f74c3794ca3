"""The standing prompt set: the questions the block lottery asks the exact model.

Each lottery attempt draws one prompt from this set and has the integer-exact SmolLM2
answer it in its chat template, so the work a miner burns produces answers worth reading.
The first set, ``cancer_knowledge_v1.txt``, is 320 short questions a cancer researcher or
clinician would ask (tumour biology, therapy, screening, trials, survivorship, genomics),
written for this project.

The file ships in the repository and is frozen once released: a new set is a new file
(``_v2``), never an edit. Two digests name it. The file's sha256
(:func:`prompt_set_sha256`) is what chain params pin: a copy that differs by a single
byte does not match it, so it can be refused before any prompt is drawn. The Merkle root
over its prompts (:func:`prompt_set_root`) lets a block or a proof name one prompt by its
index and a path, without carrying the whole set (the path fixes the position). Its leaves
are the sha256 of each prompt's UTF-8 bytes, the input hashes of the job framework, so the
root is the ``inputs_root`` of a job whose inputs are these prompts.

Loading validates the file strictly (UTF-8, no empty, duplicate or padded lines, at most
:data:`MAX_PROMPT_CHARS` characters each) and refuses rather than repairs: two nodes that
normalised a bad file differently would draw different prompts. Nothing here imports
torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chain.hashing import sha256
from chain.merkle import merkle_root

PROMPT_SET_FILE = Path(__file__).resolve().parent / "cancer_knowledge_v1.txt"
MAX_PROMPT_CHARS = 400  # far above any question in the set; bounds what a leaf commits to
MAX_PROMPTS = 65536


def load_prompt_set(path: Path | str = PROMPT_SET_FILE) -> list[str]:
    """The prompts of the file at ``path``, in order, after checking every line.

    The file is UTF-8 text, one prompt a line, each line ended by ``\\n`` (the last one
    may omit it). Raises ``ValueError`` naming the first problem and its line number.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"prompt set {path}: not valid UTF-8 at byte {e.start}") from None
    if text.startswith("\ufeff"):
        raise ValueError(f"prompt set {path}: starts with a byte-order mark")
    if "\r" in text:
        raise ValueError(f"prompt set {path}: contains a carriage return (use \\n line ends)")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line ending
    if not lines:
        raise ValueError(f"prompt set {path}: is empty")
    if len(lines) > MAX_PROMPTS:
        raise ValueError(f"prompt set {path}: {len(lines)} prompts, more than {MAX_PROMPTS}")
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        where = f"prompt set {path}, line {number}"
        if not line.strip():
            raise ValueError(f"{where}: empty line")
        if line != line.strip():
            raise ValueError(f"{where}: leading or trailing whitespace")
        if not line.isprintable():
            raise ValueError(f"{where}: contains a control or unprintable character")
        if len(line) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"{where}: {len(line)} characters, more than the limit of {MAX_PROMPT_CHARS}"
            )
        if line in seen:
            raise ValueError(f"{where}: duplicate of line {seen[line]}")
        seen[line] = number
    return lines


def prompt_leaf(text: str) -> bytes:
    """A prompt's leaf: the sha256 of its UTF-8 bytes, exactly the input hash a job names
    (specs/jobs.md), so the set's root is the ``inputs_root`` of a job over these prompts."""
    return sha256(text.encode("utf-8"))


def prompt_set_root(prompts: Sequence[str]) -> bytes:
    """The Merkle root over the prompts' leaves in file order (chain/merkle.py: leaves and
    nodes are domain-separated, and a proof's path fixes the prompt's position)."""
    return merkle_root([prompt_leaf(p) for p in prompts])


def prompt_set_sha256(path: Path | str = PROMPT_SET_FILE) -> bytes:
    """The sha256 of the file's bytes: the digest chain params pin."""
    return sha256(Path(path).read_bytes())


__all__ = [
    "MAX_PROMPTS",
    "MAX_PROMPT_CHARS",
    "PROMPT_SET_FILE",
    "load_prompt_set",
    "prompt_leaf",
    "prompt_set_root",
    "prompt_set_sha256",
]
