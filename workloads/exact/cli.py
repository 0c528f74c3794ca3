"""``fc exact ...``: sample from the integer-only model and re-check a sample, bit for bit.

    fc exact sample --prompt TEXT --seed HEX [--max-new N] [--temperature-milli T] ...
    fc exact verify --prompt TEXT --seed HEX --tokens 1,2,3 [same options as sample]

``sample`` generates one sequence and prints its tokens, its text and the digest of its
logit rows; ``verify`` re-runs the model once, teacher-forced, and exits 0 when the claimed
tokens are exactly the ones the rule gives (specs/exact.md §4), 1 naming the first
position that differs. The model is read from ``DATADIR/store``; the first use derives it
there (its sha256 is pinned). Every bad input is one line, ``fc: error: ...``, and exit
status 1, click's usage errors included. torch and the model code are imported only when
a command runs, so the rest of ``fc`` stays quick to start.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import IO, Any, NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workloads.exact.constants import BACKENDS, MAX_SEED_BYTES, MAX_TEMPERATURE_MILLI
from workloads.exact.constants import MODEL_NAMES as MODELS

MAX_NEW = 2048
DERIVE_SECONDS = {"smollm2": 40, "tiny": 10}
WIDE = 200  # columns when not on a terminal, as in node.cli
EXIT_STATUS = "Exit status 0, or 1 with one line 'fc: error: ...' on stderr for any bad input."


class ExactError(click.ClickException):
    """A failure shown as one line, ``fc: error: ...``, with exit status 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"fc: error: {self.format_message()}", err=True)


def _fail(message: str) -> NoReturn:
    raise ExactError(" ".join(message.split()))


class OneLineCommand(click.Command):
    """A command whose usage errors (bad or missing options) are one line and exit 1."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _fail(exc.format_message())


# -- option values ---------------------------------------------------------------------
def _seed(ctx: click.Context, param: click.Parameter, value: str) -> bytes:
    text = value.strip()
    if not text:
        raise click.BadParameter("the seed is empty; give 1 to 64 bytes as hex")
    if len(text) % 2:
        raise click.BadParameter(f"{len(text)} hex digits, an odd number; give whole bytes")
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not hex") from None
    if len(seed) > MAX_SEED_BYTES:
        raise click.BadParameter(f"{len(seed)} bytes, at most {MAX_SEED_BYTES} allowed")
    return seed


def _tokens(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if parts and parts[-1] == "":
        parts.pop()  # a trailing comma is harmless
    if not parts or not all(re.fullmatch(r"[0-9]{1,9}", p) for p in parts):
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of token ids, e.g. 1,2,3"
        )
    return [int(p) for p in parts]


def _prompt(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value:
        raise click.BadParameter("the prompt is empty")
    return value


def _device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", value):
        raise click.BadParameter(f"{value!r}: choose cpu, cuda or cuda:N")
    return value


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``sample`` and ``verify`` share (applied bottom-up, listed top-down)."""
    options = [
        click.option("--prompt", required=True, callback=_prompt, help="the prompt text"),
        click.option(
            "--seed",
            metavar="HEX",
            required=True,
            callback=_seed,
            help=f"drives the draws: 1 to {MAX_SEED_BYTES} bytes as hex, e.g. 01ab",
        ),
        click.option(
            "--max-new",
            type=click.IntRange(1, MAX_NEW),
            default=32,
            show_default=True,
            help="tokens to generate (fewer when EOS ends it)",
        ),
        click.option(
            "--temperature-milli",
            type=click.IntRange(0, MAX_TEMPERATURE_MILLI),
            default=0,
            show_default=True,
            help="temperature x 1000; 0 is greedy",
        ),
        click.option(
            "--model",
            type=click.Choice(MODELS),
            default="smollm2",
            show_default=True,
            help="smollm2 (SmolLM2-135M in integers) or tiny (synthetic, for regtest and tests)",
        ),
        click.option("--chat", is_flag=True, help="wrap the prompt in the model's chat template"),
        click.option(
            "--ignore-eos", is_flag=True, help="always generate --max-new tokens, EOS or not"
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            default="int8",
            show_default=True,
            help="matmul backend; every one gives the same integers",
        ),
        click.option(
            "--device",
            metavar="cpu|cuda[:N]",
            default="cpu",
            show_default=True,
            callback=_device,
            help="cpu, cuda or cuda:N (cuda needs the CUDA build of torch)",
        ),
        click.option("--threads", type=click.IntRange(1, 256), help="torch CPU threads"),
        click.option("--json", "json_", is_flag=True, help="print JSON (as does fc --json)"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# -- shared steps ----------------------------------------------------------------------
def _as_json(ctx: click.Context, json_: bool) -> bool:
    return json_ or bool(getattr(ctx.find_root().obj, "as_json", False))


def _load(ctx: click.Context, name: str, backend: str, device: str, quiet: bool) -> Any:
    """The runner for model ``name`` on ``device``, deriving the model on first use."""
    import torch

    from workloads.exact import ArtifactError, ExactRunner, load_exact_model, model_hash
    from workloads.store import BlobError, BlobStore

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                _fail(
                    f"this torch ({torch.__version__}) has no CUDA; install the CUDA build "
                    "of torch (see README, 'Exact work')"
                )
            _fail(f"device {device!r} requested but torch finds no CUDA device")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            _fail(f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA devices")
    settings = ctx.find_root().obj
    store = BlobStore(settings.resolve_datadir() / "store")
    if not store.has(model_hash(name)) and not quiet:
        click.echo(
            f"deriving the {name} exact model into the store "
            f"(first use, ~{DERIVE_SECONDS[name]} s)",
            err=True,
        )
    try:
        model = load_exact_model(store, name)
        return ExactRunner(model, backend=backend, device=device)
    except (ArtifactError, BlobError, ValueError, OSError) as exc:
        _fail(str(exc))


def _prepare(
    ctx: click.Context,
    model: str,
    backend: str,
    device: str,
    threads: int | None,
    prompt: str,
    chat: bool,
    quiet: bool,
) -> tuple[Any, list[int]]:
    """What both commands start with: threads set, the model loaded, the prompt encoded."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    runner = _load(ctx, model, backend, device, quiet=quiet)
    return runner, _encode(runner, prompt, chat)


def _encode(runner: Any, prompt: str, chat: bool) -> list[int]:
    from workloads.exact import encode_prompt

    if chat and not runner.config.chat_system:
        _fail(f"the {runner.config.name} model has no chat template; drop --chat")
    try:
        ids: list[int] = encode_prompt(runner.model, prompt, chat=chat)
        return ids
    except ValueError as exc:
        _fail(str(exc))


def _console() -> Console:
    out = Console()
    return out if out.is_terminal else Console(width=WIDE)


def _print(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, Text(str(value)))  # Text: no rich markup from generated text
    _console().print(table)


# -- the commands ----------------------------------------------------------------------
@click.group()
def exact() -> None:
    """Exact work: integer-only sampling that any node re-checks bit for bit."""


@exact.command("sample", cls=OneLineCommand, epilog=EXIT_STATUS)
@_common
@click.pass_context
def sample(
    ctx: click.Context,
    prompt: str,
    seed: bytes,
    max_new: int,
    temperature_milli: int,
    model: str,
    chat: bool,
    ignore_eos: bool,
    backend: str,
    device: str,
    threads: int | None,
    json_: bool,
) -> None:
    """Generate one sequence from the prompt, drawn by the seed, and print its tokens, text
    and logits digest. Any node's `fc exact verify` with the same options re-checks it."""
    as_json = _as_json(ctx, json_)
    runner, ids = _prepare(ctx, model, backend, device, threads, prompt, chat, as_json)
    from workloads.exact import decode_text, generate

    started = time.perf_counter()
    try:
        (generation,) = generate(
            runner, [ids], [seed], max_new, temperature_milli, stop_at_eos=not ignore_eos
        )
    except ValueError as exc:
        _fail(str(exc))
    seconds = time.perf_counter() - started
    data = {
        "model": model,
        "model_sha256": runner.model.sha256.hex(),
        "prompt_tokens": len(ids),
        "seed": seed.hex(),
        "temperature_milli": temperature_milli,
        "max_new": max_new,
        "stop_at_eos": not ignore_eos,
        "backend": backend,
        "device": device,
        "tokens": generation.tokens,
        "text": decode_text(runner.model, generation.tokens),
        "logits_digest": generation.digest.hex(),
        "row_digests": [d.hex() for d in generation.row_digests],
        "seconds": round(seconds, 3),
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    count = len(generation.tokens)
    _print(
        f"exact sample, {model}",
        {
            "model": f"{model} {data['model_sha256']}",
            "prompt tokens": len(ids),
            "tokens": ",".join(map(str, generation.tokens)),
            "text": data["text"],
            "logits digest": data["logits_digest"],
            "time": f"{seconds:.2f} s, {count} tokens ({count / max(seconds, 1e-9):.1f}/s)",
        },
    )


@exact.command(
    "verify",
    cls=OneLineCommand,
    epilog="Exit status 0 when the tokens pass, 1 when they do not (naming the first "
    "position that differs) or for any bad input (one line 'fc: error: ...' on stderr).",
)
@_common
@click.option(
    "--tokens",
    "claimed",
    metavar="ID,ID,...",
    required=True,
    callback=_tokens,
    help="the claimed generation: comma-separated token ids, as sample prints them",
)
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    prompt: str,
    seed: bytes,
    max_new: int,
    temperature_milli: int,
    model: str,
    chat: bool,
    ignore_eos: bool,
    backend: str,
    device: str,
    threads: int | None,
    json_: bool,
    claimed: list[int],
) -> None:
    """Check that --tokens are exactly what `fc exact sample` gives with the same options,
    in one teacher-forced pass: pass, or the first position that differs."""
    as_json = _as_json(ctx, json_)
    runner, ids = _prepare(ctx, model, backend, device, threads, prompt, chat, as_json)
    from workloads.exact import verify

    started = time.perf_counter()
    try:
        verdict = verify(
            runner,
            ids,
            seed,
            claimed,
            max_new,
            temperature_milli,
            stop_at_eos=not ignore_eos,
        )
    except ValueError as exc:
        _fail(str(exc))
    seconds = time.perf_counter() - started
    position = verdict.position
    got = verdict.claimed
    data = {
        "ok": verdict.ok,
        "position": position,
        "claimed": got,
        "expected": verdict.expected,
        "reason": verdict.reason,
        "model": model,
        "model_sha256": runner.model.sha256.hex(),
        "prompt_tokens": len(ids),
        "tokens": len(claimed),
        "logits_digest": verdict.digest.hex() if verdict.ok else None,
        "seconds": round(seconds, 3),
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    elif verdict.ok:
        click.echo("pass")
    elif verdict.expected is not None:
        click.echo(
            f"fail at position {position}: token {got} claimed, the rule gives {verdict.expected}"
        )
    else:
        click.echo(f"fail at position {position}: {verdict.reason}")
    if not verdict.ok:
        raise SystemExit(1)
