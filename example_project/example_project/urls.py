from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # The FlexCharge webhook: POST /flexcharge/webhook/ (point the portal here).
    path("flexcharge/", include("django_flexcharge.urls")),
    path("", include("shop.urls")),
]
