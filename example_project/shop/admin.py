from django.contrib import admin

from .models import BillingDetails, Charge, Plan, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "display_price"]
    prepopulated_fields = {"slug": ["name"]}


class ChargeInline(admin.TabularInline):
    model = Charge
    extra = 0
    can_delete = False
    fields = [
        "order_id",
        "created",
        "display_amount",
        "status",
        "response_code",
        "is_mit",
        "rescued_at",
        "note",
    ]
    readonly_fields = fields


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "reference",
        "user",
        "plan",
        "status",
        "current_period_end",
        "payment_number",
        "card",
    ]
    list_filter = ["status", "plan"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user", "card"]
    inlines = [ChargeInline]


@admin.register(Charge)
class ChargeAdmin(admin.ModelAdmin):
    """Charges are the processor's record: read-only here; FlexCharge orders have their own admin."""

    list_display = [
        "order_id",
        "user",
        "display_amount",
        "status",
        "response_code",
        "is_mit",
        "rescued_at",
        "created",
    ]
    list_filter = ["status", "is_mit", ("rescued_at", admin.EmptyFieldListFilter)]
    search_fields = ["order_id", "transaction_id", "user__email"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(BillingDetails)
class BillingDetailsAdmin(admin.ModelAdmin):
    list_display = ["user", "first_name", "last_name", "city", "country_code"]
    search_fields = ["user__username", "user__email", "last_name"]
