"""SVG geometry for the dashboard's money charts: bars per day, a line for the running total.

Computed here, drawn by ``django_flexcharge/money_chart.html``: no JavaScript,
no CDN, no inline style, so a strict Content-Security-Policy allows it. One
chart per currency, on one axis in that currency's major units; the same
numbers are in a table next to it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from django.utils.formats import date_format, number_format

from ..money import exponent, to_major

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 16, 52


def nice_step(peak: int, ticks: int = 4) -> int:
    """A whole step so that ``ticks`` steps cover ``peak``: 1-5, then 1/2/2.5/5 x 10^n."""
    raw = max(peak, 1) / ticks
    if raw <= 5:
        return math.ceil(raw)
    magnitude = 10 ** max(0, math.floor(math.log10(raw)))
    for factor in (1, 2, 2.5, 5):
        value = factor * magnitude
        if value >= raw and value == int(value):
            return int(value)
    return int(10 * magnitude)


@dataclass(frozen=True)
class Frame:
    """The plot area of a bar-and-line chart: ``slots`` columns under an axis of four
    ``step``s, in an SVG of ``width`` x ``height`` with the given margins."""

    step: int
    slots: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM

    @classmethod
    def for_peak(cls, peak: int, slots: int, **size: int) -> Frame:
        return cls(nice_step(peak), slots, **size)

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def base(self) -> int:
        return self.top + self.plot_h

    @property
    def slot(self) -> float:
        return (self.width - self.left - self.right) / max(self.slots, 1)

    def y(self, value: int) -> float:
        return round(self.base - self.plot_h * value / (self.step * 4), 1)

    def centre(self, index: int) -> float:
        return self.left + self.slot * (index + 0.5)

    def bar(self, index: int, value: int, share: float) -> dict[str, float]:
        """A bar for ``value`` filling ``share`` of its column."""
        return {
            "x": round(self.centre(index) - self.slot * share / 2, 1),
            "y": self.y(value),
            "width": round(max(self.slot * share, 1), 1),
            "height": round(self.base - self.y(value), 1),
        }

    def ticks(self) -> list[int]:
        return list(range(0, self.step * 4 + 1, self.step))

    def outline(self) -> dict[str, Any]:
        """What the templates need to draw the axes."""
        return {
            "width": self.width,
            "height": self.height,
            "left": self.left,
            "right": self.width - self.right,
            "top": self.top,
            "base": self.base,
            "mid_x": self.left + (self.width - self.left - self.right) / 2,
            "mid_y": self.top + self.plot_h / 2,
        }


def _axis_label(minor: int, currency: str) -> str:
    # Ticks are round numbers: no decimals unless the step needs them.
    value = to_major(minor, currency)
    places = 0 if value == value.to_integral_value() else exponent(currency)
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)


def money_chart(currency: str, days: list[tuple[dt.date, int, int]]) -> dict[str, Any]:
    """Geometry of one currency's chart: ``days`` are (date, recovered that day, cumulative)."""
    frame = Frame.for_peak(max([cumulative for _, _, cumulative in days] or [0]), len(days))
    bars: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    for i, (day, amount, cumulative) in enumerate(days):
        bars.append({"date": day, "amount": amount, **frame.bar(i, amount, 0.7)})
        points.append(
            {
                "date": day,
                "amount": cumulative,
                "x": round(frame.centre(i), 1),
                "y": frame.y(cumulative),
            }
        )
    every = max(1, math.ceil(len(days) / 8))
    return {
        "currency": currency,
        **frame.outline(),
        "bars": bars,
        "points": points,
        "line": " ".join(f"{p['x']},{p['y']}" for p in points),
        "y_ticks": [{"label": _axis_label(v, currency), "y": frame.y(v)} for v in frame.ticks()],
        # At most about eight date labels, the last day always among them.
        "x_labels": [
            {"x": p["x"], "label": date_format(p["date"], "j M")}
            for p in points[(len(points) - 1) % every :: every]
        ],
    }
