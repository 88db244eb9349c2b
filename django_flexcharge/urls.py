from django.urls import path

from .views import WebhookView

app_name = "django_flexcharge"

urlpatterns = [
    path("webhook/", WebhookView.as_view(), name="webhook"),
]
