"""What counts as a number in a parameter: an integer or a real number, Python's or
NumPy's, never a bool (the checks every layer's parameter validation shares)."""

from __future__ import annotations

import numbers

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
