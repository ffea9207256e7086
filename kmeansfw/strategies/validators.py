"""attrs validators shared by the strategies' parameters (errors name the parameter)."""

from __future__ import annotations

import attrs


def positive_int(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """Accept an int >= 1 (not a bool); raise ValueError naming the parameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def positive_number(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """Accept an int or float > 0 (not a bool, not NaN; infinity included); raise
    ValueError naming the parameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a number > 0, got {value!r}")
