#!/usr/bin/env bash
# A built wheel installs into a fresh virtualenv beside a new startproject site;
# migrate and check run there with the app.
set -euo pipefail
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel -q --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/django_flexcharge-*.whl)
# List once into a file: `unzip -l | grep -q` under pipefail fails whenever
# grep stops reading early and unzip gets SIGPIPE.
unzip -l "$wheel" > "$work/contents.txt"
for f in django_flexcharge/py.typed django_flexcharge/migrations/0001_initial.py \
         django_flexcharge/static/django_flexcharge/sensejs.js django_flexcharge/templates/; do
  grep -q "$f" "$work/contents.txt" || { echo "wheel lacks $f"; exit 1; }
done
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade "pip>=25.1"
"$work/venv/bin/python" -m pip install -q "$wheel" django-tasks-db
cd "$work"
"$work/venv/bin/django-admin" startproject site_check
cd site_check
cat >> site_check/settings.py <<'PY'

INSTALLED_APPS += ["rest_framework", "django_tasks", "django_tasks_db", "django_flexcharge"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
FLEXCHARGE_APP_KEY = "key"
FLEXCHARGE_APP_SECRET = "secret"
FLEXCHARGE_MID = "d9d0b5fd-9433-44d3-8051-63fee28768e8"
FLEXCHARGE_SITE_ID = "ffae80fd-2b8e-487a-94c3-87503a0c71bb"
FLEXCHARGE_TOKENIZATION_KEY = "tok"
FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = ["ZW11bGF0b3ItdGVzdC1zdWJzY3JpYmVyLWtleS0wMDAx"]
PY
sed -i 's|from django.urls import path|from django.urls import include, path|' site_check/urls.py
sed -i 's|    path("admin/", admin.site.urls),|    path("admin/", admin.site.urls),\n    path("flexcharge/", include("django_flexcharge.urls")),|' site_check/urls.py
"$work/venv/bin/python" manage.py migrate -v 0
"$work/venv/bin/python" manage.py check --fail-level WARNING
"$work/venv/bin/python" manage.py showmigrations django_flexcharge > "$work/migrations.txt"
grep -q "\[X\] 0001_initial" "$work/migrations.txt"
echo "wheel-check: $(basename "$wheel") installs; migrate and check pass in a new startproject site"
cd "$root"
