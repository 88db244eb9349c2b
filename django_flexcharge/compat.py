"""Django's Tasks API: ``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2."""

from __future__ import annotations

try:  # Django >= 6.0
    from django.tasks import TaskResultStatus, task, task_backends
    from django.tasks.backends.immediate import ImmediateBackend
except ImportError:  # Django 5.2
    # django-stubs describes django.tasks even on 5.2; the backport has the same API.
    from django_tasks import (  # type: ignore[no-redef,assignment,unused-ignore]
        TaskResultStatus,
        task,
        task_backends,
    )
    from django_tasks.backends.immediate import (  # type: ignore[no-redef,assignment,unused-ignore]
        ImmediateBackend,
    )

__all__ = ["ImmediateBackend", "TaskResultStatus", "task", "task_backends"]
