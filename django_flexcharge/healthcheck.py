"""A ``django-health-check`` check (install the ``health`` extra): the same report as ``flexcharge_health``.

Add ``"django_flexcharge.healthcheck.FlexChargeHealth"`` to the ``checks`` of
django-health-check's ``HealthCheckView``. Importing this module without
django-health-check installed raises ``ImportError``; nothing else imports it.
"""

from __future__ import annotations

import dataclasses

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from . import health


@dataclasses.dataclass
class FlexChargeHealth(HealthCheck):  # type: ignore[misc,unused-ignore]  # untyped package
    """Unavailable, with the problems in words, when ``health.collect()`` finds any."""

    def run(self) -> None:
        report = health.collect()
        if not report["healthy"]:
            raise ServiceUnavailable("; ".join(report["problems"]))
