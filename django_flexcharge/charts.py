"""SVG geometry for the dashboard's money charts: bars per day, a line for the running total.

Computed here, drawn by ``django_flexcharge/money_chart.html``: no JavaScript,
no CDN, no inline style, so a strict Content-Security-Policy allows it. One
chart per currency, on one axis in that currency's major units; the same
numbers are in a table next to it.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.utils.formats import date_format, number_format

from .money import exponent, to_major

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


def _axis_label(minor: int, currency: str) -> str:
    # Ticks are round numbers: no decimals unless the step needs them.
    value = to_major(minor, currency)
    places = 0 if value == value.to_integral_value() else exponent(currency)
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)


def money_chart(currency: str, days: list[tuple[dt.date, int, int]]) -> dict[str, Any]:
    """Geometry of one currency's chart: ``days`` are (date, recovered that day, cumulative)."""
    peak = max([cumulative for _, _, cumulative in days] or [0])
    step = nice_step(peak)
    top_value = step * 4
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    base = TOP + plot_h

    def y(value: int) -> float:
        return round(base - plot_h * value / top_value, 1)

    bars: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    for i, (day, amount, cumulative) in enumerate(days):
        centre = LEFT + slot * (i + 0.5)
        bars.append(
            {
                "date": day,
                "amount": amount,
                "x": round(centre - slot * 0.35, 1),
                "y": y(amount),
                "width": round(max(slot * 0.7, 1), 1),
                "height": round(base - y(amount), 1),
            }
        )
        points.append(
            {"date": day, "amount": cumulative, "x": round(centre, 1), "y": y(cumulative)}
        )
    every = max(1, math.ceil(len(days) / 8))
    return {
        "currency": currency,
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "base": base,
        "mid_x": LEFT + plot_w / 2,
        "mid_y": TOP + plot_h / 2,
        "bars": bars,
        "points": points,
        "line": " ".join(f"{p['x']},{p['y']}" for p in points),
        "y_ticks": [
            {"label": _axis_label(v, currency), "y": y(v)} for v in range(0, top_value + 1, step)
        ],
        # At most about eight date labels, the last day always among them.
        "x_labels": [
            {"x": p["x"], "label": date_format(p["date"], "j M")}
            for p in points[(len(points) - 1) % every :: every]
        ],
    }
