"""The webhook endpoint: a thin DRF view around ``webhooks.receive``.

Every DRF policy is set on the class, so a host's ``REST_FRAMEWORK`` defaults
(authentication, permissions, throttles, parsers, renderers, versioning,
content negotiation) cannot refuse a delivery FlexCharge has signed. The
signature is the authentication. The view runs outside ``ATOMIC_REQUESTS`` so
the event stored as failed survives a failed apply, and is exempt from CSRF and from
``LoginRequiredMiddleware``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import health, telemetry, webhooks
from .accounts import DEFAULT
from .conf import conf
from .exceptions import FlexChargeConfigurationError, FlexChargeWebhookError

logger = logging.getLogger("django_flexcharge.webhooks")


class RawBodyParser(BaseParser):
    """Any Content-Type, returned as bytes (``request.data``): FlexCharge may send its
    JSON as text/plain, and the signature covers the exact bytes."""

    media_type = "*/*"

    # DRF's stubs expect a mapping; raw bytes are the point of this parser.
    def parse(  # type: ignore[override]
        self, stream: Any, media_type: Any = None, parser_context: Any = None
    ) -> bytes:
        # DRF always passes the request. Django's own body, not the stream: it
        # enforces DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig) and keeps the
        # bytes for anyone reading them later.
        return bytes(parser_context["request"]._request.body)


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Always JSON, whatever ``Accept`` or ``?format=`` says: a 406 would only make
    FlexCharge redeliver the event for ever."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser:
        return next(iter(parsers))

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


class WebhookView(APIView):
    """``POST /flexcharge/webhook/[<account>/]``: answers per CONTRACT §7; see docs/webhooks.md."""

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [RawBodyParser]
    renderer_classes = [JSONRenderer]
    throttle_classes = []
    content_negotiation_class = JSONOnlyNegotiation
    versioning_class = None

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # DRF's as_view already applies csrf_exempt.
        view = super().as_view(**initkwargs)
        return login_not_required(transaction.non_atomic_requests(view))

    def post(self, request: Request, account: str = DEFAULT) -> Response:
        try:
            settings = conf.account(account)
        except FlexChargeConfigurationError:
            # Not one of ours: nothing to verify against, and nothing a retry could fix.
            logger.warning("webhook for unknown FlexCharge account %r refused", account)
            return _refused("unknown account", 404)
        limit = conf.WEBHOOK_MAX_BODY
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            # Django's request.body would raise ValueError (a 500) reading it.
            return _refused("Content-Length is not a number", 400)
        if declared > limit:
            return _refused("body is larger than FLEXCHARGE_WEBHOOK_MAX_BODY", 413)
        try:
            data: Any = request.data
        except RequestDataTooBig:
            return _refused("body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE", 413)
        # DRF skips the parser for an empty body (and gives an empty dict).
        body = data if isinstance(data, bytes) else b""
        # Behind a proxy the Host we see is not the one FlexCharge signed. Either way
        # verify_signature also accepts a signature for this host without its port.
        host = settings.WEBHOOK_HOST or request.get_host()
        with telemetry.webhook_span(account) as span:
            try:
                event = webhooks.receive(body, request.headers, host, account=account)
            except FlexChargeWebhookError as err:
                # A 401 is someone (or a clock) failing the signature checks: worth a warning.
                level = logging.WARNING if err.status_code == 401 else logging.INFO
                logger.log(level, "webhook refused (%s): %s", err.status_code, err)
                span["verdict"] = "refused"
                if err.status_code == 401:
                    health.note_signature_refusal()
                return _refused(str(err), err.status_code)
            except Exception:
                # Our failure: FlexCharge retries on 5xx; the row (if any) keeps the error.
                logger.exception("webhook could not be processed")
                return Response({"status": "failed"}, status=500)
            duplicate = getattr(event, "redelivered", "") == "duplicate"
            span.update(verdict="duplicate" if duplicate else event.status, event=event.event)
        if duplicate:
            # A resend of a stored delivery that had already been dealt with.
            return Response({"status": "duplicate", "event": event.pk, "stored": event.status})
        return Response({"status": event.status, "event": event.pk})


def _refused(error: str, status: int) -> Response:
    return Response({"status": "refused", "error": error}, status=status)
