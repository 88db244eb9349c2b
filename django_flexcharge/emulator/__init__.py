"""A local FlexCharge for development, demos and tests (see ``docs/emulator.md``).

``Emulator(EmulatorConfig(...)).start()`` serves the FlexCharge API on
127.0.0.1 from a background thread; ``python -m django_flexcharge.emulator``
and ``manage.py flexcharge_emulator`` run it as a process of its own.
``MultiEmulator([config_a, config_b])`` serves several merchants at one URL. It
imports nothing from Django, so it runs without settings.
"""

from .config import EmulatorConfig, webhook_host
from .control import EmulatorControl
from .core import Emulator
from .merchants import MultiEmulator
from .scenarios import NOT_RESCUED_CARD, RESCUE_CARD

__all__ = [
    "NOT_RESCUED_CARD",
    "RESCUE_CARD",
    "Emulator",
    "EmulatorConfig",
    "EmulatorControl",
    "MultiEmulator",
    "webhook_host",
]
