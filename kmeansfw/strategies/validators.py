"""attrs validators shared by the strategies' parameters (errors name the parameter)."""

from __future__ import annotations

import attrs


def positive_int(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """Accept an int >= 1 (not a bool); raise ValueError naming the parameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")
