from django.urls import include, path

from . import views

urlpatterns = [
    path("ping/", views.ping),
    path("checkout/a/", views.checkout_a),
    path("checkout/b/", views.checkout_b),
    path("checkout/f/", views.checkout_f),
    path("hook/d/", views.StoreRawBody.as_view()),
    path("hook/z/", views.Answer200.as_view()),
    path("flexcharge/", include("django_flexcharge.urls")),
]
