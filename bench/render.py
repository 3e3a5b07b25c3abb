"""Rendering speed: one diagnosis message with 3 and with 60 symptoms, from the packaged templates
(what every slash command and alert does) and through an operator's template folder (which adds
the per-message Block Kit check), with the parts of the cost printed beside the total.

    .venv/bin/python -m bench.render [--rounds 7] [--n 2000]

Medians over the rounds, in ms per message; the goal for 3 symptoms is under 0.5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.diagnosis.report import DiagnosisRun, Target
from bot.flink.models import JobDiagnosis
from bot.slack import blocks as bk
from bot.slack.render import Renderer, packaged_environment


def _run(symptoms: int) -> DiagnosisRun:
    categories = ["runtime", "state", "startup"]
    wire: dict[str, Any] = {
        "riskLevel": "RISK_LEVEL_HIGH",
        "healthScore": 42,
        "diagnoseId": "d-bench",
        "symptoms": {c: [] for c in categories},
    }
    for i in range(symptoms):
        wire["symptoms"][categories[i % 3]].append(
            {
                "name": f"Symptom {i}: checkpoint took too long",
                "description": "Checkpoint 42 of operator `window-agg` took 95 s; the timeout is 60 s. " * 2,
                "recommendation": "Raise execution.checkpointing.timeout or enable unaligned checkpoints.",
            }
        )
    target = Target(
        workspace="ws-demo",
        namespace="default-namespace",
        deployment_id="737d0921-c5ac-47fc-9ba9-07a1e0b41234",
        job_id="5af678c0-7db0-4650-94c2-d2604f0a1234",
        deployment_name="orders-etl",
        region="cn-hangzhou",
    )
    return DiagnosisRun(
        target=target,
        diagnosis=JobDiagnosis.model_validate(wire),
        diagnosed_at=datetime(2025, 2, 24, tzinfo=UTC),
    )


def _ms(fn: Callable[[], object], n: int, rounds: int) -> float:
    fn()  # warm caches (compiled templates, slack_sdk's imports)
    per = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        per.append((time.perf_counter() - start) / n * 1000)
    return statistics.median(per)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--n", type=int, default=2000, help="messages per round (3 symptoms; /20 for 60)")
    args = p.parse_args()
    packaged_environment()  # the start-up load, not counted
    with tempfile.TemporaryDirectory() as empty:  # an operator folder that overrides nothing
        ours, operators = Renderer(), Renderer(empty)
        print("ms per diagnosis message (median of rounds)")
        for symptoms, n in ((3, args.n), (60, max(1, args.n // 20))):
            run = _run(symptoms)
            message = ours.render_diagnosis(run, run_id="r1")
            total = _ms(lambda run=run: ours.render_diagnosis(run, run_id="r1"), n, args.rounds)
            checked = _ms(lambda run=run: operators.render_diagnosis(run, run_id="r1"), n, args.rounds)
            limits = _ms(lambda m=message: bk.enforce_limits(m), n, args.rounds)
            check = _ms(lambda m=message: bk.problems(m), n, args.rounds)
            goal = "  (goal < 0.5 ms: " + ("met)" if total < 0.5 else "NOT met)") if symptoms == 3 else ""
            print(
                f"  {symptoms:>2} symptoms: packaged {total:.3f}{goal}; with an operator folder "
                f"{checked:.3f}; of which enforce_limits (copying) {limits:.3f}, the per-message check {check:.3f}"
            )


if __name__ == "__main__":
    main()
