"""A diagnosis as plain terminal text (for `flinkdiag diagnose`)."""

from __future__ import annotations

import textwrap

from bot.diagnosis.report import DiagnosisRun
from bot.diagnosis.risk import health_band

CATEGORY_TITLES = {
    "startup": "Startup",
    "runtime": "Runtime",
    "troubleshooting": "Troubleshooting",
    "state": "State",
    "autopilot": "Autopilot",
    "others": "Others",
}


def format_run(run: DiagnosisRun, width: int = 100) -> str:
    d, t = run.diagnosis, run.target
    when = run.service_time or run.diagnosed_at
    score = "n/a" if d.health_score is None else str(d.health_score)
    lines = [
        f"Risk: {run.risk.label}   Health score: {score} ({health_band(d.health_score).label})",
        f"Job: {t.job_id}",
        f"Deployment: {t.deployment_name or '-'} ({t.deployment_id})",
        f"Namespace: {t.namespace}   Workspace: {t.workspace}",
        f"Diagnosed: {when.isoformat(timespec='seconds')}",
    ]
    groups = {c: items for c, items in d.symptoms.by_category().items() if items}
    if not groups:
        lines.append("\nNo symptoms found.")
    wrap = textwrap.TextWrapper(width=width, initial_indent="    ", subsequent_indent="    ")
    for category, items in groups.items():
        lines.append(f"\n{CATEGORY_TITLES.get(category, category)} ({len(items)})")
        for s in items:
            lines.append(f"  - {s.name or '(unnamed symptom)'}")
            if s.description:
                lines.extend(wrap.wrap(s.description))
            if s.recommendation:
                lines.extend(wrap.wrap("Recommendation: " + s.recommendation))
    return "\n".join(lines)
