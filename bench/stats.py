"""Distributions: percentiles and the short summaries stored in the results."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float | int]:
    """Count, mean and the percentiles the targets use, rounded for the JSON file."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(sum(values) / len(values), digits),
        "p50": round(percentile(values, 50), digits),
        "p90": round(percentile(values, 90), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
    }


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ms(seconds: float) -> float:
    return seconds * 1000


def ratio(numerator: float | None, denominator: float | None, digits: int = 2) -> float:
    """numerator / denominator, rounded; NaN (no figure) when either is missing or the
    denominator is not positive, so a target on it reads "not met", never a division error."""
    if numerator is None or denominator is None or denominator <= 0:
        return math.nan
    return round(numerator / denominator, digits)
