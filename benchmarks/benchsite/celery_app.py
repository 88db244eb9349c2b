"""The benchmark site's Celery app, as a site's ``proj/celery.py`` defines it (bench_engines.py)."""

from celery import Celery

app = Celery("benchsite", include=["django_flexcharge.contrib.celery"])
app.config_from_object("django.conf:settings", namespace="CELERY")
