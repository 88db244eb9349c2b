"""A local FlexCharge for development, demos and tests (see ``docs/emulator.md``).

``Emulator(EmulatorConfig(...)).start()`` serves the FlexCharge API on
127.0.0.1 from a background thread; ``python -m flexcharge_emulator``
and ``manage.py flexcharge_emulator`` run it as a process of its own.
``MultiEmulator([config_a, config_b])`` serves several merchants at one URL.

A distribution of its own (``django-flexcharge-emulator``, the
``django-flexcharge[emulator]`` extra): production wheels of the app carry no
control plane. It imports nothing from Django nor from ``django_flexcharge``
(only the standard library), so it runs without settings and is a second,
independent implementation of FlexCharge's side of the API.
"""

from .config import EmulatorConfig, webhook_host
from .core import Emulator
from .merchants import MultiEmulator
from .scenarios import NOT_RESCUED_CARD, RESCUE_CARD

__all__ = [
    "NOT_RESCUED_CARD",
    "RESCUE_CARD",
    "Emulator",
    "EmulatorConfig",
    "MultiEmulator",
    "webhook_host",
]
