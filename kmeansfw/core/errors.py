"""Exceptions and warnings raised by kmeansfw."""

from __future__ import annotations


class StrategyError(ValueError):
    """A strategy failed or returned something that breaks the hook contract.

    The message names the slot, the strategy and where it came from.
    """


class UnknownStrategyError(ValueError):
    """A configuration names a strategy the catalog does not know."""


class ConfigError(ValueError):
    """A configuration has a wrong key, value or type; the message names the key."""


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not hold a valid state; names the file."""


class InvalidParameterError(ConfigError, TypeError):
    """A parameter (config key) has a wrong value or type.

    A :class:`ConfigError` that is also a :class:`TypeError`, as scikit-learn's
    ``InvalidParameterError`` is both a ValueError and a TypeError, so code that catches
    either from scikit-learn's estimators catches kmeansfw's too.
    """


class PrecisionWarning(UserWarning):
    """float32 rounding changed the nearest centroid of some of the rows checked: the
    data lies too far from the point its rows are compared on for how close its
    clusters are (fit it in float64)."""
