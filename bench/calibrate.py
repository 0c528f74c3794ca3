"""Calibrate the audit tolerances and write ``specs/tolerances.md``.

For each kind, measures honest noise (threads, batch composition and size, re-runs, and
CUDA fp32 against CPU fp32 when ``--device cuda`` is given on a machine with a GPU) and the
size of each tamper, with the kind's own distance (``bench/calib_embed.py``,
``calib_generate.py``, ``calib_train.py``). For every distance it reports the largest honest
figure, the smallest tamper figure, their ratio (the **separation**; goal ≥ 20×), and where
the chosen tolerance (``workloads/tolerances.py``) sits between them. A tolerance that does
not lie strictly between honest noise and the smallest tamper fails the run.

Run: ``.venv/bin/python bench/calibrate.py [--kinds embed,generate,train] [--device cuda]
[--no-write]``. The last line is ``separation <smallest separation over all distances>``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import calib_embed  # noqa: E402
import calib_generate  # noqa: E402
import calib_train  # noqa: E402
import torch  # noqa: E402

from workloads import tolerances  # noqa: E402

GOAL = 20.0


@dataclass
class Family:
    """One distance of one kind: the honest rows and tamper rows it compares."""

    kind: str
    distance: str
    tolerance_name: str
    tolerance: float
    honest: list[tuple[str, float]]
    tampers: list[tuple[str, float]]
    notes: list[str]

    @property
    def honest_max(self) -> float:
        return max(d for _, d in self.honest)

    @property
    def tamper_min(self) -> float:
        return min(d for _, d in self.tampers)

    @property
    def separation(self) -> float:
        if self.honest_max == 0:
            return math.inf
        return self.tamper_min / self.honest_max

    @property
    def tolerance_ok(self) -> bool:
        return self.honest_max < self.tolerance < self.tamper_min


def _num(value: Any) -> float:
    return float(value)  # also "inf", as the measurement scripts write infinity


def embed_families(data: dict[str, Any]) -> list[Family]:
    return [
        Family(
            "embed",
            "relative error ‖x − ref‖ / ‖ref‖ per item",
            "relative",
            tolerances.EMBED.relative,
            [(n, _num(d)) for n, d in data["honest"]],
            [(n, _num(d)) for n, d in data["tampers"]],
            [],
        )
    ]


def train_families(data: dict[str, Any]) -> list[Family]:
    honest = [(n, _num(d)) for n, d in data["honest"] if "bitwise" not in n]
    tampers = [(n, _num(d)) for n, d in data["tampers"]]
    diverging = [(n, d) for n, d in honest if "diverging" in n]
    stable = [(n, d) for n, d in honest if "diverging" not in n]
    mild = [(n, d) for n, d in tampers if n == "lr-x0.999"]
    notes = [
        f"Runs whose loss blows up ({data['setup']['diverging configs']}) are chaotic: the "
        f"float64 stand-in drifts from the fp32 replay by up to "
        f"{max(d for _, d in diverging):.1e} within one segment, so such configurations may "
        "fail an audit on other hardware (the re-run and thread figures stay 0). They are "
        "left out of the honest maximum.",
    ]
    if mild:
        notes.append(
            f"lr ×0.999 (milder than the issue's ×0.99) measures {mild[0][1]:.1e}: below the "
            "tolerance, so not caught; listed for the record, not counted as a tamper."
        )
    replay_honest = [(n, d) for n, d in stable if "replay" in n]
    metric_honest = [(n, d) for n, d in stable if "metric" in n]
    metric_tampers = [(n, d) for n, d in tampers if n.startswith("made-up")]
    replay_tampers = [
        (n, d) for n, d in tampers if not n.startswith("made-up") and n != "lr-x0.999"
    ]
    return [
        Family(
            "train",
            "replay distance: max(‖w_replay − w_claimed‖ / ‖w_replay − w_k‖, same for momentum)",
            "replay",
            tolerances.TRAIN.replay,
            replay_honest,
            replay_tampers,
            notes,
        ),
        Family(
            "train",
            "final metrics: |claimed − recomputed| / max(1, |recomputed|)",
            "metric",
            tolerances.TRAIN.metric,
            metric_honest,
            metric_tampers,
            [],
        ),
    ]


def generate_families(data: dict[str, Any]) -> list[Family]:
    honest = data["honest"]  # [name, max_abs_logprob_diff, max_rel_logit_diff]
    tampers = data["tampers"]  # [name, rel_logit_diff, all_flagged, max_audit_distance]
    model_tampers = [(t[0], _num(t[1])) for t in tampers if _num(t[1]) > 0]
    token_tampers = [t for t in tampers if _num(t[1]) == 0]
    notes = [
        "Tampers that run the genuine model but cheat on the tokens (invented text with a "
        "genuine prefill, truncation, a wrong sampling seed) leave the "
        "logits of the committed tokens genuine; they are caught exactly, by the token rule "
        "(each token must be the model's choice unless the top-2 margin is within ε) or the "
        "length rule: " + ", ".join(f"{t[0]} (flagged: {t[2]})" for t in token_tampers) + ".",
        f"Audit distances of honest runs: {data.get('honest_audit_distance')}.",
    ]
    honest_logits = max(_num(h[2]) for h in honest)
    mildest = min(model_tampers, key=lambda t: t[1])
    notes.append(
        "The logits of a teacher-forced pass over the committed tokens tell the same story "
        f"(max|a − b| / max|b|): honest at most {honest_logits:.1e}, the mildest model tamper "
        f"({mildest[0]}) {mildest[1]:.1e}, a separation of {mildest[1] / honest_logits:.0f}×."
    )
    for t in tampers:
        if "x1.0001" in t[0]:
            notes.append(
                f"{t[0]} (ten times milder than the issue's ×1.001) reaches an audit distance of "
                f"{_num(t[3]):.1e}; every item flagged: {t[2]}. Listed for the record, not "
                "counted as a tamper."
            )
    return [
        Family(
            "generate",
            "log-probability of each generated token: |claimed − recomputed|",
            "logprob",
            tolerances.GENERATE.logprob,
            [(h[0], _num(h[1])) for h in honest],
            [(t[0], _num(t[3])) for t in tampers if _num(t[1]) > 0 and "x1.0001" not in t[0]],
            notes,
        ),
    ]


def fmt(x: float) -> str:
    return "∞" if math.isinf(x) else ("0" if x == 0 else f"{x:.2e}")


def render(families: list[Family], device: str, raw: dict[str, dict[str, Any]]) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        "# Audit tolerances",
        "",
        "Status: **normative** for the `default` profile of each kind (`workloads/tolerances.py`).",
        f"Written by `bench/calibrate.py` on {today}, device `{device}`, torch {torch.__version__}.",
        "Do not edit by hand: change the code or the measurement and run it again.",
        "",
        "Every audit distance is measured for honest variations (which must never be flagged) and",
        "for tampers (which must be). The **separation** is the smallest tamper over the largest",
        "honest figure; the goal is at least 20×. The tolerance sits between the two, with room on",
        "both sides.",
        "",
        "## Summary",
        "",
        "| kind | distance | largest honest | smallest tamper | separation | tolerance |",
        "|---|---|---|---|---|---|",
    ]
    for f in families:
        lines.append(
            f"| {f.kind} | {f.distance.replace('|', chr(92) + '|')} | {fmt(f.honest_max)} | {fmt(f.tamper_min)} |"
            f" {fmt(f.separation) if not math.isinf(f.separation) else '∞'}× |"
            f" {f.tolerance_name} = {fmt(f.tolerance)} |"
        )
    for f in families:
        lines += [
            "",
            f"## {f.kind}: {f.distance}",
            "",
            "| honest variation | distance |",
            "|---|---|",
        ]
        lines += [f"| {n} | {fmt(d)} |" for n, d in f.honest]
        lines += ["", "| tamper | distance |", "|---|---|"]
        lines += [f"| {n} | {fmt(d)} |" for n, d in f.tampers]
        for note in f.notes:
            lines += ["", note]
    lines += [
        "",
        "## Cost of an audit",
        "",
        "| kind | worker s/item | audit s/item |",
        "|---|---|---|",
    ]
    for kind, data in raw.items():
        lines.append(
            f"| {kind} | {data['worker_per_item_seconds']:.4f} | {data['audit_per_item_seconds']:.4f} |"
        )
    if "generate" in raw:
        g = raw["generate"]
        lines += [
            "",
            f"Generation: a teacher-forced prefill check took {g['prefill_seconds']:.2f} s against "
            f"{g['generate_seconds']:.2f} s to generate the same tokens.",
        ]
    lines += [
        "",
        "## CPU against GPU",
        "",
        "Not measured yet: no GPU was lent while this table was written. On a machine with one,",
        "`bench/calibrate.py --device cuda` measures the embed rows on CUDA and adds CUDA fp32",
        "against CPU fp32 (the generate and train measurements still run on the CPU); that row",
        "must stay below the tolerance, or the tolerance must move.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default="embed,generate,train")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    raw: dict[str, dict[str, Any]] = {}
    families: list[Family] = []
    if "embed" in kinds:
        raw["embed"] = calib_embed.measure(args.device)
        families += embed_families(raw["embed"])
    if "generate" in kinds:
        raw["generate"] = calib_generate.measure()
        families += generate_families(raw["generate"])
    if "train" in kinds:
        raw["train"] = calib_train.measure()
        families += train_families(raw["train"])
    for f in families:
        print(
            f"{f.kind:9} {f.tolerance_name:10} honest ≤ {fmt(f.honest_max):9} tamper ≥ "
            f"{fmt(f.tamper_min):9} separation {fmt(f.separation):>9}x  tolerance {fmt(f.tolerance)}"
            f"{'' if f.tolerance_ok else '  OUTSIDE THE GAP'}"
        )
    if not args.no_write:
        device = "cpu" if args.device == "cpu" else torch.cuda.get_device_name()
        (ROOT / "specs" / "tolerances.md").write_text(render(families, device, raw))
        print("wrote specs/tolerances.md")
    bad = [f for f in families if not f.tolerance_ok]
    separation = min(f.separation for f in families)
    print(f"separation {fmt(separation)}")
    if bad:
        raise SystemExit("a tolerance lies outside the gap between honest noise and tampers")


if __name__ == "__main__":
    main()
