"""Minor-unit digits of a currency, for the emulator's major-unit amounts.

FlexCharge takes ``amountToRefund`` in major units while orders carry integer
minor units; the emulator converts with the currency's ISO 4217 exponent. It
keeps its own table (it imports nothing from the app); a code it does not
know counts as 2 digits, the common case.
"""

from __future__ import annotations

_EXPONENTS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    "CLF": 4,
    "UYW": 4,
}


def exponent(currency: str) -> int:
    """Minor-unit digits of ``currency`` (USD 2, JPY 0, KWD 3; unknown codes 2)."""
    return _EXPONENTS.get(currency.upper(), 2)
