"""Packaging that pyproject.toml cannot say: `templates/` stays at the top of the repository for
operators to read and copy, and ships inside the wheel as `bot/templates` from that one folder (no
copy to keep in step). pyproject's `packages.find` cannot add a package mapped from another
folder, so the package list is made here."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["bot", "bot.*"], exclude=["*.__pycache__"]),
        "bot.templates",
    ],
    package_dir={"bot.templates": "templates"},
    # Read at run time: every message template, and Alembic's template for new revisions.
    package_data={"bot.templates": ["*.json.j2"], "bot.store.migrations": ["script.py.mako"]},
)
