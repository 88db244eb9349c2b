"""``GET <flexcharge urls>/health/``: the health report as JSON, 200 when healthy, 503 when not.

Open to a monitor that sends ``Authorization: Bearer <FLEXCHARGE_HEALTH_TOKEN>``
(compared in constant time) and to logged-in staff; anyone else gets 403, so
the queue's state and the last webhook's time are not public. Without the
setting only staff can read it. ``?account=<alias>`` narrows the rows to one
account (an unknown alias is a 404).
"""

from __future__ import annotations

import hmac
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import health
from .accounts import account_conf
from .conf import conf
from .exceptions import FlexChargeConfigurationError


def _allowed(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = conf.HEALTH_TOKEN
    given = request.headers.get("Authorization", "")
    if not token or not given.startswith("Bearer "):
        return False
    return hmac.compare_digest(given.removeprefix("Bearer ").strip().encode(), token.encode())


@login_not_required
@never_cache
@require_GET
def health_view(request: HttpRequest) -> Any:
    if not _allowed(request):
        return JsonResponse({"error": "staff or FLEXCHARGE_HEALTH_TOKEN required"}, status=403)
    account = request.GET.get("account") or None
    if account is not None:
        try:
            account_conf(account)
        except FlexChargeConfigurationError:
            return JsonResponse({"error": "unknown account"}, status=404)
    report = health.collect(account=account)
    return JsonResponse(report, status=200 if report["healthy"] else 503)
