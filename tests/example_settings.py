"""Settings for the example project's tests: the package's test settings plus the ``shop`` app.

Run them with ``pytest --ds=tests.example_settings tests/example``.
``example_project/example_project/settings.py`` itself reads the environment
(``.env``); ``tests/example/test_project.py`` checks it separately, through
``manage.py check`` in a subprocess.
"""

import sys
from pathlib import Path

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

EXAMPLE_PROJECT = Path(__file__).resolve().parent.parent / "example_project"
# Where manage.py would put it: first, so ``example_project`` is the settings
# package inside it, not the directory of the same name at the repo root.
if str(EXAMPLE_PROJECT) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_PROJECT))

INSTALLED_APPS = [*INSTALLED_APPS, "shop"]
ROOT_URLCONF = "example_project.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "account"
