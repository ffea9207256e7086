"""Exceptions and warnings raised by kmeansfw."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from types import FrameType


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
    """Rounding in float32 changed the nearest centroid of some of the rows checked: the
    data lies too far from the point its rows are compared on for how close its
    clusters are (fit it in float64)."""


def warn(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` located in the user's program: at the first caller outside
    kmeansfw and the libraries that call into it (scikit-learn's ``fit_predict``,
    pipelines and searches, with joblib's sequential calls under them; pluggy's hook
    calls; click's command line: its script), however deep the warning is raised, so
    that a warning names the line that asked for the work and filters by module match
    it, whichever way the call came in.

    Parameters
    ----------
    message : str or Warning
        The text (or a warning instance, whose class is then the category).
    category : type of Warning, default=UserWarning
        The warning's class, when ``message`` is a text.
    """
    prefixes = _library_folders()

    def in_library(frame: FrameType) -> bool:
        return frame.f_code.co_filename.startswith(prefixes)

    # from the function that warns (stacklevel 2) to the first frame outside them
    frame, level = _past(sys._getframe(1), 2, in_library)
    if frame is not None and _is_runpy(frame):
        # runpy ran kmeansfw's entry module: a program of the user's that called runpy
        # (runpy.run_module) is further out; under ``python -m kmeansfw`` there is
        # none, and runpy's frame would name a file that is not there, so the entry
        # module's line instead, as the ``kmeansfw`` script names its own
        outer, outer_level = _past(frame, level, lambda f: _is_runpy(f) or in_library(f))
        level = outer_level if outer is not None else level - 1
    warnings.warn(message, category, stacklevel=level)


def _past(
    frame: FrameType | None, level: int, skipped: Callable[[FrameType], bool]
) -> tuple[FrameType | None, int]:
    """The first frame from ``frame`` outward that ``skipped`` does not match, and its
    ``stacklevel`` counted from ``frame``'s ``level``, not counting importlib's frames
    (:func:`warnings.warn` does not count them either)."""
    while frame is not None and skipped(frame):
        frame = frame.f_back
        while frame is not None and _import_machinery(frame):
            frame = frame.f_back
        level += 1
    return frame, level


def _is_runpy(frame: FrameType) -> bool:
    """Whether ``frame`` runs in the standard library's ``runpy`` module (``python -m``,
    ``runpy.run_module``), by the module's name: a file of the user's that happens to
    be called ``runpy.py`` runs as ``__main__`` or under its package's name."""
    return frame.f_globals.get("__name__") == "runpy"


def _import_machinery(frame: FrameType) -> bool:
    """Whether ``frame`` is importlib's bootstrap, which :func:`warnings.warn` skips
    when it counts ``stacklevel`` (a warning raised while a module imports)."""
    name = frame.f_code.co_filename
    return "importlib" in name and "_bootstrap" in name


@functools.cache
def _library_folders() -> tuple[str, ...]:
    """kmeansfw's folder, and those of the libraries that call into it where installed
    (scikit-learn, pluggy, joblib, click), each ending in a separator."""
    import importlib.util

    folders = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for name in ("sklearn", "pluggy", "joblib", "click"):
        spec = importlib.util.find_spec(name)
        folders.extend((spec.submodule_search_locations or []) if spec else [])
    return tuple(os.path.join(folder, "") for folder in folders)
