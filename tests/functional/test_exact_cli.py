"""``fc exact sample`` and ``fc exact verify`` as a person runs them: real processes, the
tiny synthetic model, one data directory for the module (the model is derived once)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from node.cli import cli
from workloads import exact as package

FC = Path(sys.executable).parent / "fc"
PROMPT = ["--model", "tiny", "--prompt", "What does BRCA1 do?", "--chat"]
GREEDY = [*PROMPT, "--seed", "01ab", "--max-new", "8"]
SAMPLED = [*PROMPT, "--seed", "5eed", "--max-new", "8", "--temperature-milli", "800"]
SAMPLED_ALL = [*SAMPLED, "--ignore-eos"]


def run(datadir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FC), "--datadir", str(datadir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=datadir.parent,
    )


def sample(datadir: Path, *args: str) -> dict[str, Any]:
    done = run(datadir, "--json", "exact", "sample", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def verify(datadir: Path, tokens: list[int], *args: str) -> subprocess.CompletedProcess[str]:
    return run(datadir, "exact", "verify", *args, "--tokens", ",".join(map(str, tokens)), "--json")


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fc: error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exact") / "dd"


@pytest.fixture(scope="module")
def greedy(datadir: Path) -> dict[str, Any]:
    done = run(datadir, "exact", "sample", *GREEDY, "--json")  # derives the tiny model
    assert done.returncode == 0, done.stderr
    assert "deriving" not in done.stderr  # --json keeps stderr quiet
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def sampled(datadir: Path, greedy: dict[str, Any]) -> dict[str, Any]:
    return sample(datadir, *SAMPLED_ALL)


def test_fc_starts_without_torch() -> None:
    """Registering ``fc exact`` must not slow every ``fc`` command by loading torch."""
    code = "import sys, node.cli; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_sample_prints_everything(greedy: dict[str, Any], sampled: dict[str, Any]) -> None:
    for out, temperature in ((greedy, 0), (sampled, 800)):
        assert out["model"] == "tiny"
        assert out["model_sha256"] == package.model_hash("tiny").hex()
        assert out["temperature_milli"] == temperature and out["max_new"] == 8
        assert 1 <= len(out["tokens"]) <= 8 and isinstance(out["prompt_tokens"], int)
        assert len(out["row_digests"]) == len(out["tokens"])
        assert len(bytes.fromhex(out["logits_digest"])) == 32
        assert isinstance(out["text"], str) and out["seconds"] >= 0
    assert greedy["stop_at_eos"] is True and greedy["seed"] == "01ab"
    assert sampled["stop_at_eos"] is False and len(sampled["tokens"]) == 8
    assert sampled["tokens"] != greedy["tokens"]


def test_sampling_is_reproducible_on_every_backend(
    datadir: Path, greedy: dict[str, Any], sampled: dict[str, Any]
) -> None:
    again = sample(datadir, *SAMPLED_ALL)
    assert (again["tokens"], again["logits_digest"]) == (
        sampled["tokens"],
        sampled["logits_digest"],
    )
    fp64 = sample(datadir, *GREEDY, "--backend", "fp64", "--threads", "1")
    assert (fp64["tokens"], fp64["logits_digest"]) == (greedy["tokens"], greedy["logits_digest"])
    assert fp64["backend"] == "fp64"


def test_verify_passes_the_printed_tokens(
    datadir: Path, greedy: dict[str, Any], sampled: dict[str, Any]
) -> None:
    done = verify(datadir, greedy["tokens"], *GREEDY)
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["ok"] is True and verdict["position"] is None
    assert verdict["logits_digest"] == greedy["logits_digest"]

    # without --json: one word
    done = run(
        datadir, "exact", "verify", *SAMPLED_ALL, "--tokens", ",".join(map(str, sampled["tokens"]))
    )
    assert (done.returncode, done.stdout.strip()) == (0, "pass"), done.stderr


def test_verify_names_the_first_differing_position(datadir: Path, sampled: dict[str, Any]) -> None:
    tokens = list(sampled["tokens"])
    changed = [*tokens[:3], (tokens[3] + 1) % 49152, *tokens[4:]]
    done = verify(datadir, changed, *SAMPLED_ALL)
    assert done.returncode == 1, done.stderr
    verdict = json.loads(done.stdout)
    assert (verdict["ok"], verdict["position"]) == (False, 3)
    assert (verdict["claimed"], verdict["expected"]) == (changed[3], tokens[3])
    assert verdict["reason"] == f"token {changed[3]} claimed, the rule gives {tokens[3]}"

    text = run(datadir, "exact", "verify", *SAMPLED_ALL, "--tokens", ",".join(map(str, changed)))
    assert text.returncode == 1
    assert text.stdout.strip() == (
        f"fail at position 3: token {changed[3]} claimed, the rule gives {tokens[3]}"
    )

    other_seed = [a if a != "5eed" else "5eee" for a in SAMPLED_ALL]
    done = verify(datadir, tokens, *other_seed)
    assert done.returncode == 1 and isinstance(json.loads(done.stdout)["position"], int)

    for wrong_length in (tokens[:-1], [*tokens, tokens[-1]]):
        done = verify(datadir, wrong_length, *SAMPLED_ALL)
        assert done.returncode == 1, done.stderr
        verdict = json.loads(done.stdout)
        assert verdict["ok"] is False and verdict["position"] in (7, 8)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seed", "abc"], ["odd"]),
        (["--seed", "zz"], ["not hex"]),
        (["--seed", ""], ["empty"]),
        (["--seed", "00" * 65], ["65 bytes"]),
        (["--seed", "01", "--max-new", "0"], ["--max-new"]),
        (["--seed", "01", "--model", "huge"], ["--model", "huge"]),
        (["--seed", "01", "--prompt", ""], ["prompt is empty"]),
        (["--prompt", "hello"], ["--seed"]),
        (["--seed", "01", "--device", "tpu"], ["--device", "tpu"]),
        (["--seed", "01", "--tokens", ""], ["--tokens"]),
        (["--seed", "01", "--tokens", "1,x,3"], ["--tokens", "1,x,3"]),
        (["--seed", "01", "--tokens", "1,-2"], ["--tokens", "1,-2"]),
    ],
)
def test_bad_options_are_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    # In-process: these fail while the options are parsed, before any model loads.
    command = "verify" if "--tokens" in args else "sample"
    result = CliRunner().invoke(
        cli, ["--datadir", str(tmp_path), "exact", command, "--prompt", "hi", *args]
    )
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fc: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_bad_seed_is_one_line_from_the_real_command(datadir: Path) -> None:
    one_line_error(
        run(datadir, "exact", "verify", *PROMPT, "--seed", "0x1", "--tokens", "1"), "--seed"
    )


def test_bad_input_after_loading_is_one_line(datadir: Path, greedy: dict[str, Any]) -> None:
    too_long = [a if a != "8" else "2048" for a in GREEDY]
    one_line_error(run(datadir, "exact", "sample", *too_long), "positions")
    if not torch.cuda.is_available():
        one_line_error(
            run(datadir, "exact", "sample", *GREEDY, "--device", "cuda"), "CUDA build of torch"
        )


def test_help_names_every_option() -> None:
    common = [
        "--prompt",
        "--seed",
        "--max-new",
        "--temperature-milli",
        "--model",
        "--chat",
        "--ignore-eos",
        "--backend",
        "--device",
        "--threads",
        "--json",
    ]
    for command, extra in (("sample", []), ("verify", ["--tokens"])):
        result = CliRunner().invoke(cli, ["exact", command, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        for option in [*common, *extra]:
            assert option in result.stdout, (command, option)
        assert "Exit status" in result.stdout
