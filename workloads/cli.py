"""``fc job ...``: run and audit useful work on this machine, without a network.

    fc job run-local SPEC.json [--out RESULT] [--device cpu|cuda] [--threads N]
    fc job audit RESULT [--samples N] [--seed N] [--all]

Blobs (models, inputs, checkpoints) live in ``DATADIR/store``. ``run-local`` prints the
job id, units and costs and the batch root, and writes the result file (default
``<job id prefix>.result`` in the current directory). ``audit`` exits 0 when the result
passes, 1 with the reasons when it does not. torch is imported only when a command runs,
so the rest of ``fc`` stays quick to start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table


def _store(ctx: click.Context) -> Any:
    from workloads.store import BlobStore

    settings = ctx.find_root().obj
    return BlobStore(settings.resolve_datadir() / "store")


def _fail(message: str) -> None:
    click.echo(f"fc: error: {message}", err=True)
    raise SystemExit(1)


@click.group()
def job() -> None:
    """Useful work: run a job locally, audit a result."""


@job.command("run-local")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="result file")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N")
@click.option("--threads", type=click.IntRange(1, 256), help="torch CPU threads")
@click.option("--batch-size", type=click.IntRange(1, 4096), help="items per forward pass")
@click.pass_context
def run_local(
    ctx: click.Context,
    spec_file: Path,
    out: Path | None,
    device: str,
    threads: int | None,
    batch_size: int | None,
) -> None:
    """Run every unit of the job in SPEC (a JSON job file) and commit to the outputs."""
    from chain.jobs import InvalidJobSpec
    from workloads.job import JobFileError, load_job_file, prepare_job, run_job
    from workloads.store import BlobError

    store = _store(ctx)
    try:
        spec, hashes = prepare_job(store, load_job_file(spec_file))
    except (JobFileError, InvalidJobSpec, BlobError) as exc:
        _fail(f"{spec_file}: {exc}")
    started = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=ctx.find_root().obj.as_json,
    ) as bar:
        task = bar.add_task(f"{spec.kind.value} items", total=spec.items)
        try:
            result = run_job(
                store,
                spec,
                hashes,
                device=device,
                threads=threads,
                batch_size=batch_size,
                progress=lambda n: bar.advance(task, n),
            )
        except (ValueError, RuntimeError, BlobError) as exc:
            _fail(str(exc))
    seconds = time.perf_counter() - started
    path = out or Path(f"{spec.job_id.hex()[:16]}.result")
    result.save(path)
    summary = {
        "job_id": spec.job_id.hex(),
        "kind": spec.kind.value,
        "items": spec.items,
        "units": spec.units,
        "cost": sum(spec.unit_cost(u) for u in range(spec.units)),
        "batch_root": result.batch_root.hex(),
        "unit_roots": [u.root.hex() for u in result.units],
        "device": result.provenance,
        "seconds": round(seconds, 3),
        "items_per_second": round(spec.items / seconds, 2),
        "result": str(path),
    }
    _print(ctx, summary, f"job {summary['job_id'][:16]}")


@job.command("audit")
@click.argument("result_file", metavar="RESULT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--samples", type=click.IntRange(1, 100_000), default=4, show_default=True)
@click.option("--seed", type=int, help="fix the auditor's randomness (default: the OS's)")
@click.option("--all", "every", is_flag=True, help="re-execute every item")
@click.option("--device", default="cpu", show_default=True)
@click.pass_context
def audit(
    ctx: click.Context, result_file: Path, samples: int, seed: int | None, every: bool, device: str
) -> None:
    """Check RESULT: every root exactly, and a random sample of items by re-execution."""
    from workloads.job import ResultError, audit_job, load_result
    from workloads.store import BlobError

    store = _store(ctx)
    try:
        result = load_result(result_file)
    except ResultError as exc:
        _fail(f"{result_file}: {exc}")
    indices = list(range(result.spec.items)) if every else None
    try:
        verdict = audit_job(
            store, result, samples=samples, seed=seed, device=device, indices=indices
        )
    except (ValueError, RuntimeError, BlobError) as exc:
        _fail(str(exc))
    summary = {
        "job_id": result.spec.job_id.hex(),
        "verdict": "pass" if verdict.passed else "fail",
        "checked_items": [c.index for c in verdict.checks],
        "max_distance": verdict.max_distance,
        "reasons": verdict.reasons,
        "worker_device": result.provenance,
    }
    _print(ctx, summary, f"audit of {summary['job_id'][:16]}")
    if not verdict.passed:
        raise SystemExit(1)


def _print(ctx: click.Context, data: dict[str, Any], title: str) -> None:
    if ctx.find_root().obj.as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], str):
            value = "\n".join(value)
        table.add_row(key, str(value))
    Console().print(table)
