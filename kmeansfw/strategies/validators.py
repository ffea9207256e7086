"""attrs validators shared by the strategies' parameters (errors name the parameter)."""

from __future__ import annotations

import numbers

import attrs
import numpy as np


def integer(value: object) -> bool:
    """Whether ``value`` is an integer, Python's or NumPy's (not a bool).

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def real(value: object) -> bool:
    """Whether ``value`` is a real number, Python's or NumPy's (not a bool; NaN and
    infinities included).

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


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
