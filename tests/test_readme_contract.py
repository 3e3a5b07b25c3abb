"""The README is a contract: its two commands are the ones CI runs, its command table is what the
bot parses, and its settings table is what `Settings` reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

from bot.commands import AnyCommand, parse_command
from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(text: str, lang: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)]


def table_after(heading: str) -> list[list[str]]:
    """Rows (cells stripped) of the first Markdown table after `heading`, header row excluded."""
    section = README[README.index(heading) :]
    lines = section.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    rows: list[list[str]] = []
    for ln in lines[start + 2 :]:  # skip the header and the |---| line
        if not ln.startswith("|"):
            break
        # `\|` is a pipe inside a cell (e.g. in a code span), not a cell border.
        cells = re.split(r"(?<!\\)\|", ln.strip().strip("|"))
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def ci_command() -> str:
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")][-1]


# ----------------------------------------------------------------------------- the two commands


def test_first_two_shell_blocks_are_run_and_test():
    run, test = code_blocks(README, "sh")[:2]
    assert "\n" not in run and "\n" not in test  # one line each, to paste as is
    venv = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && "
    assert run == venv + ".venv/bin/flinkdiag console"
    assert test.startswith(venv)
    assert test.endswith(".venv/bin/pytest -q")
    assert ".venv/bin/ruff check ." in test and ".venv/bin/ruff format --check ." in test
    # Both come before any other section: they are what a newcomer sees first.
    assert README.index(test) < README.index("\n## ")


def test_readme_test_command_is_what_ci_runs():
    assert code_blocks(README, "sh")[1] == ci_command()


def test_scripted_console_example_runs(tmp_path):
    example = next(b for b in code_blocks(README, "sh") if b.startswith("printf") and "console" in b)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLINKDIAG_", "SLACK_"))}
    env["FLINKDIAG_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'readme.db'}"
    venv_bin = Path(sys.executable).parent
    # The README says `.venv/bin/flinkdiag`; run it with whichever environment runs the tests.
    command = example.replace(".venv/bin/", f"{venv_bin}/")
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=20
    )
    assert proc.returncode == 0, proc.stderr
    assert "Re-run diagnosis" in proc.stdout
    assert "flinkdiag updated" in proc.stdout  # the `1` pressed the button


# ----------------------------------------------------------------------------- the command table

# Stand-ins for the placeholders the table uses; a new placeholder must be added here.
SAMPLES = {
    "<job-id>": "5af678c0-7db0-4650-94c2-d2604f0a1234",
    "<name-or-id>": "orders-etl",
    "<ns>": "analytics",
    "N": "analytics",
    "W": "ws-demo",
    "R": "high",
    "F": "off",
    "K": "5",
    "S": "60",
    "D": "10m",
    "HH:MM": "09:30",
    "TZ": "Europe/Berlin",
}


def documented_commands() -> list[str]:
    forms: list[str] = []
    for row in table_after("## Commands"):
        forms += re.findall(r"`(/flinkdiag [^`]*)`", row[0])
    return forms


def concrete(form: str) -> list[str]:
    """The command with no optional parts and with all of them, placeholders filled in."""

    def fill(text: str) -> str:
        out = []
        for token in text.split():
            key, eq, value = token.partition("=")
            if eq and value in SAMPLES:
                token = f"{key}={SAMPLES[value]}"
            elif token in SAMPLES:
                token = SAMPLES[token]
            assert not re.search(r"<[^>]*>", token), f"unknown placeholder {token!r}: add it to SAMPLES"
            out.append(token)
        return " ".join(out)

    body = form.removeprefix("/flinkdiag ")
    shortest = re.sub(r"\s*\[[^\]]*\]", "", body)
    longest = body.replace("[", "").replace("]", "")
    return [fill(shortest), fill(longest)]


def test_every_documented_command_parses():
    forms = documented_commands()
    assert len(forms) >= 10
    for form in forms:
        for text in concrete(form):
            command = parse_command(text, min_interval=Settings.model_fields["min_watch_interval"].default)
            assert command.kind == text.split()[0], (form, text, command)


def test_every_command_kind_is_documented():
    documented = {form.split()[1] for form in documented_commands()}
    kinds = {get_args(cls.model_fields["kind"].annotation)[0] for cls in get_args(AnyCommand)}
    assert kinds - documented == set(), f"commands missing from the README's table: {kinds - documented}"


# ----------------------------------------------------------------------------- the settings table


def env_names() -> dict[str, str]:
    """Environment variable -> Settings field, as pydantic-settings reads them."""
    prefix = Settings.model_config.get("env_prefix") or ""
    names: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        if choices:
            for alias in choices:
                if alias.isupper():
                    names[alias] = field
        else:
            names[(prefix + field).upper()] = field
    return names


def documented_settings() -> list[str]:
    names: list[str] = []
    for row in table_after("### Settings (environment)"):
        names += re.findall(r"`([A-Z][A-Z0-9_]+)`", row[0])
    return names


def test_documented_settings_exist():
    known = env_names()
    documented = documented_settings()
    assert len(documented) == len(set(documented)), "a setting is documented twice"
    unknown = [n for n in documented if n not in known]
    assert not unknown, f"the README documents settings that Settings does not read: {unknown}"


def test_every_setting_is_documented():
    documented = set(documented_settings())
    missing = sorted(name for name in env_names() if name not in documented)
    assert not missing, f"settings missing from the README's table: {missing}"
