from django.urls import path

from .views import WebhookView

app_name = "django_flexcharge"

urlpatterns = [
    path("webhook/", WebhookView.as_view(), name="webhook"),
    # One URL per FlexCharge account: each verifies with that account's keys only.
    path("webhook/<str:account>/", WebhookView.as_view(), name="webhook"),
]
