"""The example project as a whole: its settings, migrations and demo data."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from shop.models import Plan, Subscription

from django_flexcharge.models import Transmission, VaultedCard

EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"


def env_example() -> dict[str, str]:
    values = {}
    for line in (EXAMPLE / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_env_example_lists_every_flexcharge_setting():
    text = (EXAMPLE / ".env.example").read_text()
    settings_py = (EXAMPLE / "example_project" / "settings.py").read_text()
    names = set(re.findall(r"\b(FLEXCHARGE_[A-Z_]+) = env", settings_py))
    assert len(names) >= 14
    for name in names:
        assert re.search(rf"^#? ?{name}=", text, re.MULTILINE), name


def test_example_settings_pass_manage_py_check(tmp_path):
    env = {
        **os.environ,
        **env_example(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_shop_migrations_match_the_models():
    call_command("makemigrations", "shop", "--check", "--dry-run", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_seed_demo_creates_customers_once_and_the_admin(flexcharge):
    out = io.StringIO()
    call_command("seed_demo", "--customers", "10", stdout=out)
    call_command("seed_demo", "--customers", "10", stdout=out)

    assert Plan.objects.count() == 3
    assert Subscription.objects.count() == 10
    assert VaultedCard.objects.count() == 10
    assert len(flexcharge.calls_to("tokenize")) == 10  # vaulted through the API, once
    assert Transmission.objects.count() == 10
    assert get_user_model().objects.get(username="admin").is_superuser
    assert "10 already there" in out.getvalue()
    assert "admin / admin" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_renewal_run_over_the_demo_gives_approvals_and_rescues(flexcharge):
    call_command("seed_demo", "--customers", "10", stdout=io.StringIO())
    out = io.StringIO()

    call_command("renew_subscriptions", "--all", stdout=out)

    assert re.search(r"\b5\s+approved", out.getvalue())
    assert re.search(r"\b5\s+declined, handed to FlexCharge", out.getvalue())
    assert Subscription.objects.filter(status="rescue_pending").count() == 5
    assert len(flexcharge.calls_to("evaluate")) == 5
