"""Money at the API edge: integer minor units inside, major units only where FlexCharge wants them.

Amounts are integer minor units with an ISO-4217 currency everywhere in the
app. ``/orders/{id}/refund`` takes ``amountToRefund`` in major units, so it is
the one place that converts, exactly, with ``Decimal`` and the currency's
exponent.
"""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 active codes (2024 list). Exponent 2 unless listed below.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD
    BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD
    EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR
    ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
    MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR
    PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF
    XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL""".split()
)

_EXPONENTS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    "CLF": 4,
    "UYW": 4,
}


def is_currency(code: str) -> bool:
    return code in ISO_4217


def exponent(currency: str) -> int:
    """Number of minor-unit digits of ``currency`` (USD 2, JPY 0, KWD 3)."""
    code = currency.upper()
    if code not in ISO_4217:
        raise ValueError(f"unknown ISO-4217 currency {currency!r}")
    return _EXPONENTS.get(code, 2)


def to_major(amount: int, currency: str) -> Decimal:
    """Integer minor units -> exact ``Decimal`` major units: ``to_major(1999, "USD") == Decimal("19.99")``."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount must be an integer number of minor units")
    return Decimal(amount).scaleb(-exponent(currency))


def to_minor(amount: Decimal | str | int, currency: str) -> int:
    """Major units -> integer minor units; refuses amounts with more precision than the currency has."""
    value = Decimal(str(amount)).scaleb(exponent(currency))
    if value != value.to_integral_value():
        raise ValueError(f"{amount} has more decimal places than {currency} allows")
    return int(value)


def format_amount(amount: int, currency: str) -> str:
    """``"19.99 USD"``, for messages and the admin."""
    return f"{to_major(amount, currency):f} {currency.upper()}"
