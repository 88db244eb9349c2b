"""The emulator is a distribution of its own: it imports nothing from the app nor from Django,
and the app imports it only when ``manage.py flexcharge_emulator`` runs."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import flexcharge_emulator

EMULATOR_PACKAGE = Path(flexcharge_emulator.__file__).resolve().parent
REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("django", "django_flexcharge", "requests")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.partition(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            roots.add("..")  # above the package: the app, when it lived inside it
    return roots


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(EMULATOR_PACKAGE.parent)]),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_no_module_of_the_emulator_imports_the_app_django_or_a_third_party_package():
    modules = sorted(EMULATOR_PACKAGE.glob("*.py"))
    assert len(modules) > 10
    for module in modules:
        found = _imported_roots(module) & {*FORBIDDEN, ".."}
        assert not found, f"{module.name} imports {sorted(found)}"


def test_importing_every_emulator_module_loads_no_app_and_no_django():
    code = """
import json, pkgutil, importlib, sys
import flexcharge_emulator
import pytest
for info in pkgutil.walk_packages(flexcharge_emulator.__path__, "flexcharge_emulator."):
    importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "flexcharge_emulator.webhooks" in loaded
    assert [m for m in loaded if m.partition(".")[0] in FORBIDDEN] == []


def test_the_app_imports_and_runs_its_checks_without_the_emulator_installed():
    code = """
import importlib, io, pkgutil, sys
sys.modules["flexcharge_emulator"] = None  # as if not installed
import django
django.setup()
import django_flexcharge
names = [i.name for i in pkgutil.walk_packages(django_flexcharge.__path__, "django_flexcharge.")]
for name in names:
    importlib.import_module(name)
assert "django_flexcharge.management.commands.flexcharge_emulator" in names
from django.core.management import call_command
from django.core.management.base import CommandError
call_command("check")
try:
    call_command("flexcharge_emulator")
except CommandError as err:
    print("ERROR:", err)
from django_flexcharge.management.commands.flexcharge_emulator import Command
print("HELP:", Command().create_parser("manage.py", "flexcharge_emulator").format_help())
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    error = result.stdout.partition("ERROR: ")[2].partition("HELP:")[0]
    assert 'pip install "django-flexcharge[emulator]"' in error
    assert "pip install -e ./emulator" in error
    help_text = " ".join(result.stdout.partition("HELP:")[2].split())
    assert 'pip install "django-flexcharge[emulator]"' in help_text
    assert "--all-accounts" in help_text


# The same, in this process (the subprocess above is out of coverage's sight).


def test_without_the_emulator_the_command_says_what_to_install(monkeypatch):
    from django.core.management import CommandError, call_command

    from django_flexcharge.management.commands import flexcharge_emulator as command

    monkeypatch.setitem(sys.modules, "flexcharge_emulator", None)  # not installed
    assert command.emulator_cli() is None
    help_text = command.Command().create_parser("manage.py", "flexcharge_emulator").format_help()
    assert "django-flexcharge[emulator]" in help_text
    assert "--all-accounts" in help_text
    with pytest.raises(CommandError, match=r"django-flexcharge\[emulator\]"):
        call_command("flexcharge_emulator")


def test_a_broken_emulator_install_is_not_mistaken_for_a_missing_one(monkeypatch):
    from django_flexcharge.management.commands import flexcharge_emulator as command

    def broken(name: str):
        raise ModuleNotFoundError("No module named 'its_dependency'", name="its_dependency")

    monkeypatch.setattr(command.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="its_dependency"):
        command.emulator_cli()
