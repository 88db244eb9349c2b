"""The Celery app of the engine tests, as a site's ``proj/celery.py`` would define it."""

from celery import Celery

app = Celery("flexcharge_tests", include=["django_flexcharge.contrib.celery"])
app.config_from_object("django.conf:settings", namespace="CELERY")
