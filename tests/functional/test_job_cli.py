"""``fc job run-local`` and ``fc job audit`` as a person runs them: real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.workcheat import recommit
from workloads.job import load_result

FC = [sys.executable, "-m", "node.cli"]
JOB = {
    "kind": "embed",
    "inputs": [
        "Tamoxifen lowers recurrence in ER-positive disease.",
        "BRCA1 carriers are offered earlier screening.",
        "Trastuzumab targets HER2.",
    ],
    "params": {"max_tokens": 64},
    "unit_size": 2,
}


def fc(datadir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FC, "--datadir", str(datadir), "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=datadir.parent,
    )


def test_run_audit_and_a_tampered_result(tmp_path: Path) -> None:
    datadir = tmp_path / "dd"
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(JOB))
    result_file = tmp_path / "job.result"
    run = fc(datadir, "job", "run-local", str(spec_file), "--out", str(result_file))
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert (summary["items"], summary["units"], summary["kind"]) == (3, 2, "embed")
    assert len(summary["unit_roots"]) == 2 and summary["cost"] > 0

    audit = fc(datadir, "job", "audit", str(result_file), "--all")
    assert audit.returncode == 0, audit.stderr
    verdict = json.loads(audit.stdout)
    assert verdict["verdict"] == "pass" and verdict["checked_items"] == [0, 1, 2]

    # A worker that swapped two items and recomputed every root: only re-execution sees it.
    result = load_result(result_file)
    first = result.units[0].outputs
    recommit(result, {0: [first[1], first[0]]}).save(result_file)
    audit = fc(datadir, "job", "audit", str(result_file), "--all")
    assert audit.returncode == 1
    verdict = json.loads(audit.stdout)
    assert verdict["verdict"] == "fail" and len(verdict["reasons"]) == 2


def test_bad_job_files_and_results_get_one_line(tmp_path: Path) -> None:
    datadir = tmp_path / "dd"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**JOB, "params": {"max_tokens": 9999}}))
    run = fc(datadir, "job", "run-local", str(bad))
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0
    assert "job-param-range" in run.stderr and "max_tokens=9999" in run.stderr

    bad.write_text("{not json")
    run = fc(datadir, "job", "run-local", str(bad))
    assert run.returncode == 1 and "not JSON" in run.stderr

    garbage = tmp_path / "garbage.result"
    garbage.write_bytes(b"\x93\x01\x02")
    audit = fc(datadir, "job", "audit", str(garbage))
    assert audit.returncode == 1 and "not a job result file" in audit.stderr
    assert audit.stderr.strip().count("\n") == 0
