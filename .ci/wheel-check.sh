#!/usr/bin/env bash
# Both wheels build: the app's (django-flexcharge), which holds no emulator, and
# the emulator's (django-flexcharge-emulator). The app's wheel ALONE installs into
# a fresh virtualenv beside a new startproject site; migrate and check run there.
# A second new site with NO FlexCharge settings (no secrets needed to develop):
# migrate, check (warnings only) and `manage.py test` succeed, `flexcharge_emulator`
# says what to install (its --help too), and only `check --deploy` fails, naming
# each missing setting. Then the emulator's wheel is added: `flexcharge_emulator
# --help` lists its options.
set -euo pipefail
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel -q --no-deps -w "$work/dist" .
.venv/bin/python -m pip wheel -q --no-deps -w "$work/dist" ./emulator
wheel=$(ls "$work"/dist/django_flexcharge-*.whl)
emulator_wheel=$(ls "$work"/dist/django_flexcharge_emulator-*.whl)
# List once into a file: `unzip -l | grep -q` under pipefail fails whenever
# grep stops reading early and unzip gets SIGPIPE.
unzip -l "$wheel" > "$work/contents.txt"
for f in django_flexcharge/py.typed django_flexcharge/migrations/0001_initial.py \
         django_flexcharge/static/django_flexcharge/sensejs.js django_flexcharge/templates/; do
  grep -q "$f" "$work/contents.txt" || { echo "wheel lacks $f"; exit 1; }
done
# No emulator (and so no control plane) in the app's wheel (the management command
# django_flexcharge/management/commands/flexcharge_emulator.py is the app's own).
for f in flexcharge_emulator/ django_flexcharge/emulator/; do
  if grep -qE "[[:space:]]$f" "$work/contents.txt"; then echo "the app's wheel holds $f"; exit 1; fi
done
grep -q 'Requires-Dist: django-flexcharge-emulator==.*extra == "emulator"' \
  <(unzip -p "$wheel" '*.dist-info/METADATA') || { echo "no [emulator] extra"; exit 1; }
unzip -l "$emulator_wheel" > "$work/emulator-contents.txt"
for f in flexcharge_emulator/__main__.py flexcharge_emulator/signing.py flexcharge_emulator/py.typed; do
  grep -q "$f" "$work/emulator-contents.txt" || { echo "emulator wheel lacks $f"; exit 1; }
done
if grep -q "django_flexcharge/" "$work/emulator-contents.txt"; then
  echo "the emulator's wheel holds the app"; exit 1
fi
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
# Either quote style of the project template (Django 5.2 writes 'admin/').
sed -i -E 's|^(    path\(.admin/., admin.site.urls\),)$|\1\n    path("flexcharge/", include("django_flexcharge.urls")),|' site_check/urls.py
grep -q 'include("django_flexcharge.urls")' site_check/urls.py
"$work/venv/bin/python" manage.py migrate -v 0
"$work/venv/bin/python" manage.py check --fail-level WARNING
"$work/venv/bin/python" manage.py showmigrations django_flexcharge > "$work/migrations.txt"
grep -q "\[X\] 0001_initial" "$work/migrations.txt"
echo "wheel-check: $(basename "$wheel") installs; migrate and check pass in a new startproject site"

cd "$work"
"$work/venv/bin/django-admin" startproject no_secrets
cd no_secrets
cat >> no_secrets/settings.py <<'PY'

INSTALLED_APPS += ["rest_framework", "django_tasks", "django_tasks_db", "django_flexcharge"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
PY
sed -i 's|from django.urls import path|from django.urls import include, path|' no_secrets/urls.py
sed -i -E 's|^(    path\(.admin/., admin.site.urls\),)$|\1\n    path("flexcharge/", include("django_flexcharge.urls")),|' no_secrets/urls.py
py="$work/venv/bin/python"
"$py" manage.py migrate -v 0
"$py" manage.py check 2> "$work/check.txt"
grep -q "django_flexcharge.W001" "$work/check.txt" || { echo "no W001 warning"; cat "$work/check.txt"; exit 1; }
"$py" manage.py test > "$work/test.txt" 2>&1 || { echo "manage.py test failed"; cat "$work/test.txt"; exit 1; }
# Without the emulator installed: --help works and says what to install; running it
# fails with the same clear message.
"$py" manage.py flexcharge_emulator --help > "$work/help.txt"
grep -q 'pip install "django-flexcharge\[emulator\]"' <(tr -s ' \n' ' ' < "$work/help.txt") \
  || { echo "flexcharge_emulator --help does not say what to install"; cat "$work/help.txt"; exit 1; }
if "$py" manage.py flexcharge_emulator > "$work/run.txt" 2>&1; then
  echo "flexcharge_emulator ran without the emulator installed"; exit 1
fi
grep -q 'CommandError: The FlexCharge emulator is not installed' "$work/run.txt" \
  && grep -q 'pip install "django-flexcharge\[emulator\]"' "$work/run.txt" \
  || { echo "flexcharge_emulator fails without the install message"; cat "$work/run.txt"; exit 1; }
if "$py" manage.py check --deploy > "$work/deploy.txt" 2>&1; then
  echo "check --deploy passed without FlexCharge settings"; exit 1
fi
for name in FLEXCHARGE_APP_KEY FLEXCHARGE_APP_SECRET FLEXCHARGE_MID FLEXCHARGE_SITE_ID \
            FLEXCHARGE_TOKENIZATION_KEY FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS; do
  grep -q "(django_flexcharge.E001) $name is not set" "$work/deploy.txt" \
    || { echo "check --deploy does not name $name"; cat "$work/deploy.txt"; exit 1; }
done
echo "wheel-check: without FlexCharge settings migrate, check and test pass, flexcharge_emulator says what to install; check --deploy names each missing setting"
"$work/venv/bin/python" -m pip install -q "$emulator_wheel"
"$py" manage.py flexcharge_emulator --help > "$work/help.txt"
grep -q -- "--site-url" "$work/help.txt" || { echo "no --site-url in --help"; cat "$work/help.txt"; exit 1; }
"$py" -m flexcharge_emulator --help | grep -q -- "--control-token"
echo "wheel-check: with $(basename "$emulator_wheel") added, flexcharge_emulator --help lists its options"
cd "$root"
