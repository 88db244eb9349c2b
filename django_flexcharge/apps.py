from django.apps import AppConfig


class FlexChargeConfig(AppConfig):
    name = "django_flexcharge"
    verbose_name = "FlexCharge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registering checks and connecting receivers here (not at import) keeps
        # importing the package free of side effects.
        from . import (  # noqa: F401
            account_checks,
            accounts,
            checks,
            engine_checks,
            receivers,
            security_checks,
        )
