"""The example site's own settings on the engine ``FC_ENGINE`` (the e2e stack on RQ / Celery)."""

from example_project.settings import *  # noqa: F403
from example_project.settings import INSTALLED_APPS

from tests.engines.engine_settings import engine_settings

globals().update(engine_settings(INSTALLED_APPS))
