from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.plans, name="plans"),
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("checkout/<slug:slug>/", views.checkout, name="checkout"),
    path("account/", views.account, name="account"),
    path(
        "account/subscriptions/<int:pk>/cancel/",
        views.cancel_subscription,
        name="cancel_subscription",
    ),
    path("renewals/run/", views.run_renewals, name="run_renewals"),
]
