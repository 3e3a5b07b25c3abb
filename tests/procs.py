"""Running `flinkdiag` as a real process in tests: the command and a clean environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_SCRIPT = Path(sys.executable).parent / "flinkdiag"
# The console script when installed (as the README's commands do), else the module.
FLINKDIAG = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bot.cli"]


def clean_env(tmp_path: Path, *, db_name: str = "bot.db", **extra: str) -> dict[str, str]:
    """The caller's environment without any bot, Slack or cloud settings, and a private database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLINKDIAG_", "SLACK_", "ALIBABA_CLOUD_")) and k != "PORT"
    }
    env["FLINKDIAG_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / db_name}"
    env.update(extra)
    return env
