"""Kubernetes resource quantities, just enough to multiply them.

A prefork pod of N workers gets N times the per-worker CPU and memory, so the
operator must multiply quantities such as ``500m`` or ``256Mi``. The result
is written the way the API server would write it back (``1`` rather than
``1000m``, ``512Mi`` rather than ``536870912``), so that comparing a desired
object with the stored one does not see a difference that is only spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Fraction] = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<decimal>[numkMGTPE]?)|[eE](?P<exponent>[+-]?\d+))$"
)


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity."""


@dataclass(frozen=True)
class Quantity:
    """An exact amount and whether it was written with binary suffixes."""

    value: Fraction
    binary: bool = False

    def __mul__(self, factor: int) -> Quantity:
        return Quantity(self.value * factor, self.binary)

    def __str__(self) -> str:
        return _format(self.value, self.binary)


def parse(text: str | int) -> Quantity:
    """Parse ``"500m"``, ``"1.5"``, ``"256Mi"``, ``"1e3"`` or an integer."""
    if isinstance(text, int):
        return Quantity(Fraction(text))
    match = _PATTERN.match(text.strip())
    if not match:
        raise QuantityError(f"{text!r} is not a quantity (examples: 1, 500m, 256Mi)")
    number = Fraction(match["number"])
    if match["binary"]:
        return Quantity(number * _BINARY[match["binary"]], binary=True)
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        scale = Fraction(10**exponent) if exponent >= 0 else Fraction(1, 10**-exponent)
        return Quantity(number * scale)
    return Quantity(number * _DECIMAL[match["decimal"] or ""])


def _format(value: Fraction, binary: bool) -> str:
    """The API server's canonical spelling (rounded up to a whole milli-unit)."""
    if value.denominator != 1:
        millis = -(-value.numerator * 1000 // value.denominator)
        return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
    whole = int(value)
    if whole == 0:
        return "0"
    suffixes = (
        _BINARY if binary else {k: int(v) for k, v in _DECIMAL.items() if v.denominator == 1 and k}
    )
    for suffix, size in sorted(suffixes.items(), key=lambda item: -item[1]):
        if whole % size == 0:
            return f"{whole // size}{suffix}"
    return str(whole)
