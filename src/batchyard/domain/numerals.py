"""Strict parsing of numbers that arrive as text (resourceRequirements values, node ranges,
job definition revisions, epoch-millisecond filters), and the integer widths AWS and the store
can hold.

Python's float() and int() take much more than AWS does: "inf", "nan", "1e308", "1_0",
Arabic-Indic digits, surrounding spaces, "+1". A value parsed that loosely can be stored as
something the store cannot hold (NaN, an integer past 64 bits) or slip past a capacity check
(NaN compares false with everything). Only plain ASCII decimal notation passes here.
"""

from __future__ import annotations

import re
from decimal import Decimal

# The widths of botocore's `integer` (Java Integer) and `long` (Java Long) shapes; the store
# keeps integers as signed 64-bit, so `long` is also what it can hold.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Longer text is refused before it is converted: nothing AWS takes needs more, and it keeps
# int()'s cost (and its 4300-digit limit) out of reach.
MAX_NUMERAL_LENGTH = 64

# [0-9] rather than \d: \d also matches other scripts' digits, which int() happily converts.
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class NumeralError(ValueError):
    """Text that is not a number in the notation asked for; the message says why."""


def parse_decimal(text: object) -> Decimal:
    """A finite decimal written as `[-]digits[.digits]`, exactly (no float rounding)."""
    if not isinstance(text, str) or len(text) > MAX_NUMERAL_LENGTH:
        raise NumeralError("is not a number")
    if _DECIMAL.fullmatch(text) is None:
        raise NumeralError("is not a number in plain decimal notation (for example 2 or 0.5)")
    return Decimal(text)


def parse_integer(text: object, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """An integer written as `[-]digits`, within [low, high]."""
    if not isinstance(text, str) or len(text) > MAX_NUMERAL_LENGTH:
        raise NumeralError("is not an integer")
    if _INTEGER.fullmatch(text) is None:
        raise NumeralError("is not an integer in plain decimal notation")
    value = int(text)
    if not low <= value <= high:
        raise NumeralError(f"is outside {low}..{high}")
    return value


def is_integral(value: Decimal) -> bool:
    """Whether a parsed decimal is a whole number ("4096" and "4096.0", not "4096.5")."""
    return value == value.to_integral_value()
