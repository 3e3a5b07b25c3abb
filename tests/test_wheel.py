"""A wheel built from the checkout works anywhere: installed (not editable) into a fresh virtual
environment outside the checkout, `flinkdiag console` answers and `flinkdiag serve --help` runs.

The third-party wheels are kept in `build/wheelhouse` (ignored by git), filled through pip's own
index configuration the first time, so later runs install with `--no-index`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import clean_env

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "/flinkdiag deployment orders-etl\n1\n"  # the README's scripted console
pytestmark = pytest.mark.timeout(600)


@dataclass
class Installed:
    wheel: Path
    venv: Path
    home: Path  # a folder outside the checkout to run in

    @property
    def flinkdiag(self) -> Path:
        return self.venv / "bin" / "flinkdiag"

    def packaged(self, name: str) -> Path:
        [site] = (self.venv / "lib").glob("python3.*/site-packages")
        return site / "bot" / "templates" / name

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = clean_env(self.home, db_name="wheel.db")
        # Nothing from the checkout may leak in: not its path, not its virtual environment.
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        return subprocess.run(
            [str(self.flinkdiag), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.home,
            timeout=60,
        )


def _pip(python: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    # `--python` (a target environment) is a pip option that must come first.
    return subprocess.run(
        [str(python), "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=500,
    )


def _build_wheel(out: Path, scratch: Path) -> Path:
    # Build from a copy of the sources: the checkout stays clean (no build/ folder), and the wheel
    # cannot lean on files that only exist next to it.
    src = scratch / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.db"
        ),
    )
    done = _pip(sys.executable, "wheel", "-q", "--no-deps", "-w", str(out), str(src))
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = out.glob("flinkdiag-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(work / "dist", work)
    env_dir = work / "venv"
    # No pip inside (ensurepip takes seconds): this process's pip installs into it (`--python`),
    # and without byte-compiling everything up front.
    venv.create(env_dir, with_pip=False, clear=True)
    python = env_dir / "bin" / "python"
    # Not pytest's cache folder: runs with `-p no:cacheprovider` have none.
    wheelhouse = ROOT / "build" / "wheelhouse"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    offline = ("install", "-q", "--no-compile", "--no-index", "--find-links", str(wheelhouse), str(wheel))
    done = _pip(sys.executable, "--python", str(python), *offline)
    if done.returncode != 0:  # first run, or the dependencies changed: fill the wheelhouse once
        filled = _pip(sys.executable, "wheel", "-q", "-w", str(wheelhouse), str(wheel))
        assert filled.returncode == 0, filled.stdout + filled.stderr
        (wheelhouse / wheel.name).unlink(missing_ok=True)  # ours is rebuilt every run
        done = _pip(sys.executable, "--python", str(python), *offline)
    assert done.returncode == 0, done.stdout + done.stderr
    home = work / "elsewhere"
    home.mkdir()
    return Installed(wheel, env_dir, home)


def test_the_wheel_carries_what_the_bot_reads_at_run_time(installed: Installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    ours = sorted(p.name for p in (ROOT / "templates").glob("*.json.j2"))
    assert ours and {f"bot/templates/{n}" for n in ours} <= names
    for n in ours:  # one source of truth: the wheel's copy is the repository's templates/
        assert installed.packaged(n).read_bytes() == (ROOT / "templates" / n).read_bytes()
    assert "bot/store/migrations/script.py.mako" in names
    assert "bot/store/migrations/env.py" in names
    versions = sorted(p.name for p in (ROOT / "bot/store/migrations/versions").glob("0*.py"))
    assert versions and {f"bot/store/migrations/versions/{v}" for v in versions} <= names
    assert not [n for n in names if n.startswith(("tests/", "templates/", "bench/"))]


def test_the_installed_console_answers_a_scripted_conversation(installed: Installed):
    done = installed.run("console", stdin=SCRIPT)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "Diagnosing deployment orders-etl: the answer follows below." in done.stdout
    assert "Low risk · orders-etl" in done.stdout
    assert "flinkdiag updated (only you)" in done.stdout  # button [1], Re-run, edited it in place
    assert (installed.home / "wheel.db").exists()  # migrated from the packaged Alembic scripts


def test_the_installed_serve_help_runs(installed: Installed):
    done = installed.run("serve", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: flinkdiag serve" in done.stdout


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("{% if %}", "packaged template error.json.j2 does not load"),
        (None, "packaged template error.json.j2 is missing"),
    ],
)
def test_a_broken_packaged_template_stops_start_up_with_one_line(installed: Installed, damage, says):
    path = installed.packaged("error.json.j2")
    good = path.read_bytes()
    try:
        if damage is None:
            path.unlink()
        else:
            path.write_text(damage, encoding="utf-8")
        done = installed.run("console", stdin=SCRIPT)
    finally:
        path.write_bytes(good)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("flinkdiag: cannot start: ") and says in line, line
    assert done.stdout == ""
    assert os.path.exists(path)
