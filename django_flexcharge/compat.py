"""Django's Tasks API: ``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2."""

from __future__ import annotations

try:  # Django >= 6.0
    from django.tasks import TaskResultStatus, task, task_backends
    from django.tasks.backends.immediate import ImmediateBackend
except ImportError:  # Django 5.2
    from django_tasks import TaskResultStatus, task, task_backends  # type: ignore[no-redef]
    from django_tasks.backends.immediate import ImmediateBackend  # type: ignore[no-redef]

__all__ = ["ImmediateBackend", "TaskResultStatus", "task", "task_backends"]
