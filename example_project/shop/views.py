"""Pages of the example site: plans, sign-up, checkout, the customer's account."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from django_flexcharge.exceptions import FlexChargeError, FlexChargeValidationError
from django_flexcharge.services import is_under_rescue
from django_flexcharge.templatetags.flexcharge import SENSE_KEY_FIELD

from . import billing
from .forms import BILLING_FIELDS, CheckoutForm, SignupForm
from .models import BillingDetails, InvoiceNumber, Plan, Subscription

#: Session key: plan slug -> the order id the checkout page announced to SenseJS.
CHECKOUT_ORDERS = "shop_checkout_order_ids"


def plans(request: HttpRequest) -> HttpResponse:
    subscribed: set[int] = set()
    if request.user.is_authenticated:
        subscribed = set(
            request.user.subscriptions.filter(status__in=Subscription.LIVE).values_list(
                "plan_id", flat=True
            )
        )
    return render(
        request, "shop/plans.html", {"plans": Plan.objects.all(), "subscribed": subscribed}
    )


def signup(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        next_url = ""
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(next_url or "plans")
    return render(request, "registration/signup.html", {"form": form, "next": next_url})


def _order_id(request: HttpRequest, plan: Plan) -> str:
    """The order id of this checkout, allocated once and kept while the page is reloaded.

    SenseJS is told the order id when the page renders, before the card is
    charged, so the charge must use that same id.
    """
    orders = request.session.get(CHECKOUT_ORDERS, {})
    if plan.slug not in orders:
        orders[plan.slug] = InvoiceNumber.allocate()
        request.session[CHECKOUT_ORDERS] = orders
    return orders[plan.slug]


def _forget_order_id(request: HttpRequest, plan: Plan) -> None:
    orders = request.session.get(CHECKOUT_ORDERS, {})
    orders.pop(plan.slug, None)
    request.session[CHECKOUT_ORDERS] = orders


def _initial(user: Any) -> dict[str, str]:
    details = BillingDetails.objects.filter(user=user).first()
    if details is not None:
        return {name: getattr(details, name) for name in BILLING_FIELDS}
    return {"first_name": user.first_name, "last_name": user.last_name}


@login_required
@sensitive_post_parameters("card_number", "cvv")
@sensitive_variables()
def checkout(request: HttpRequest, slug: str) -> HttpResponse:
    """Subscribe to a plan: card and billing address in, subscription out.

    ``sensitive_post_parameters`` and ``sensitive_variables`` keep the card
    number and CVV out of Django's error reports should anything here fail.
    """
    plan = get_object_or_404(Plan, slug=slug)
    if request.user.subscriptions.filter(plan=plan).filter(status__in=Subscription.LIVE).exists():
        messages.info(request, f"You are already subscribed to {plan.name}.")
        return redirect("account")

    order_id = _order_id(request, plan)
    # At most a few hundred characters in practice; the cap keeps junk out of the API call.
    sense_key = request.POST.get(SENSE_KEY_FIELD, "").strip()[:500]
    if request.method != "POST":
        form = CheckoutForm(initial=_initial(request.user))
    else:
        form = CheckoutForm(request.POST)
        if form.is_valid():
            try:
                result = billing.checkout(
                    user=request.user,
                    plan=plan,
                    card=form.cleaned_data["card"],
                    billing=form.billing_fields(),
                    order_id=order_id,
                    sense_key=sense_key,
                )
            except FlexChargeValidationError as err:
                form.add_flexcharge_error(err)
            else:
                # That order id is spent: a new attempt gets a new one.
                _forget_order_id(request, plan)
                if result.approved:
                    messages.success(
                        request, f"Welcome to {plan.name}! Order {order_id} was approved."
                    )
                    return redirect("account")
                form.add_error(
                    None,
                    f"Your card was declined ({result.charge.response_description}). "
                    "Please try another card.",
                )
                order_id = _order_id(request, plan)
    return render(
        request,
        "shop/checkout.html",
        {"plan": plan, "form": form, "order_id": order_id, "sense_key": sense_key},
    )


@login_required
def account(request: HttpRequest) -> HttpResponse:
    subscriptions = []
    for subscription in request.user.subscriptions.select_related("plan", "card"):
        latest = subscription.latest_charge()
        subscriptions.append(
            {
                "subscription": subscription,
                # The app's answer, not our status column: it is what decides
                # whether the site may charge this invoice again.
                "under_rescue": latest is not None and is_under_rescue(latest.order_id),
                "charges": subscription.charges.all(),
            }
        )
    return render(
        request,
        "shop/account.html",
        {
            "subscriptions": subscriptions,
            "checkout_declines": request.user.charges.filter(subscription=None),
        },
    )


@login_required
@require_POST
def cancel_subscription(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = get_object_or_404(Subscription, pk=pk, user=request.user)
    if subscription.status == Subscription.Status.CANCELLED:
        return redirect("account")
    try:
        billing.cancel(subscription, user=request.user)
    except FlexChargeError:
        messages.error(
            request,
            "We could not stop the payment retry in progress, so your subscription is "
            "unchanged. Please try again in a few minutes.",
        )
    else:
        messages.success(request, f"{subscription.plan.name} is cancelled.")
    return redirect("account")


@staff_member_required
@require_POST
def run_renewals(request: HttpRequest) -> HttpResponse:
    """Renew every active subscription now (demo convenience; production runs the command from cron)."""
    outcomes = billing.renew_all(billing.due_subscriptions(include_not_due=True))
    summary = ", ".join(
        f"{count} {outcome.value.replace('_', ' ')}" for outcome, count in outcomes.items()
    )
    messages.info(request, f"Renewal run: {summary or 'nothing to renew'}.")
    return redirect("account")
