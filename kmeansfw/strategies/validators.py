"""attrs validators shared by the strategies' parameters (errors name the parameter)."""

from __future__ import annotations

import attrs
import numpy as np

from kmeansfw.core.numbers import integer, real

__all__ = ["finite_non_negative", "integer", "positive_int", "positive_number", "real"]


def positive_int(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """Accept an integer >= 1 (Python's or NumPy's; not a bool); raise ValueError naming
    the parameter otherwise."""
    if not integer(value) or value < 1:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def positive_number(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """Accept a real number > 0 (Python's or NumPy's; not a bool, not NaN; infinity
    included); raise ValueError naming the parameter otherwise."""
    if not real(value) or not value > 0:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be a number > 0, got {value!r}")


def finite_non_negative(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """Accept a finite real number >= 0 (Python's or NumPy's; not a bool); raise
    ValueError naming the parameter otherwise."""
    if not real(value) or not np.isfinite(value) or value < 0:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")
