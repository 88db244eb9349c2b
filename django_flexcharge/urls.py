from django.urls import path

from .health_views import health_view
from .views import WebhookView

app_name = "django_flexcharge"

urlpatterns = [
    path("webhook/", WebhookView.as_view(), name="webhook"),
    path("health/", health_view, name="health"),
    # One URL per FlexCharge account: each verifies with that account's keys only.
    path("webhook/<str:account>/", WebhookView.as_view(), name="webhook"),
]
