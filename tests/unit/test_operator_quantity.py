"""Quantities are multiplied for prefork pods and written as the API server writes them."""

import pytest

from corescale.operator.api import quantity


@pytest.mark.parametrize(
    ("text", "factor", "expected"),
    [
        ("1", 1, "1"),
        ("1", 4, "4"),
        ("500m", 2, "1"),
        ("500m", 3, "1500m"),
        ("0.5", 1, "500m"),
        ("1000m", 1, "1"),
        ("100m", 4, "400m"),
        ("256Mi", 2, "512Mi"),
        ("512Mi", 2, "1Gi"),
        ("1G", 3, "3G"),
        ("1e3", 2, "2k"),
        (2, 3, "6"),
    ],
)
def test_multiply_and_canonical_spelling(text: str | int, factor: int, expected: str) -> None:
    assert str(quantity.parse(text) * factor) == expected


@pytest.mark.parametrize("text", ["", "one", "1.2.3", "5 Mi", "1Xi", "m"])
def test_malformed_quantities_are_refused(text: str) -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse(text)


def test_comparison_uses_exact_values() -> None:
    assert quantity.parse("1500m").value == quantity.parse("1.5").value
    assert quantity.parse("1Ki").value == 1024
