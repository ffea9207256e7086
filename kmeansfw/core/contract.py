"""Checks on what strategies return: shape, dtype, range and finiteness.

Every answer of a firstresult hook that the engine or a built-in strategy consumes goes
through :func:`call`, so a broken strategy fails with a :class:`StrategyError` naming the
strategy (and where it came from) instead of corrupting the fit silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pluggy

from kmeansfw.core.errors import StrategyError
from kmeansfw.kernels import finite_min, int_range


def answering_plugin(caller: Any) -> str:
    """Name of the implementation a firstresult hook asks first (wrappers skipped)."""
    name = getattr(caller, "plugin_name", None)
    if name is not None:  # a hook resolved by the engine (kmeansfw.engine.plugins)
        return name
    if not isinstance(caller, pluggy.HookCaller):
        return "<no plugin>"
    for impl in reversed(caller.get_hookimpls()):
        if not (impl.hookwrapper or impl.wrapper):
            return impl.plugin_name
    return "<no plugin>"


def call(relay: pluggy.HookRelay, name: str, /, **kwargs: Any) -> Any:
    """Call hook ``name`` and re-raise any exception with the answering strategy named."""
    caller = getattr(relay, name)
    try:
        direct = getattr(caller, "call_with", None)  # a resolved hook takes the dict as is
        return caller(**kwargs) if direct is None else direct(kwargs)
    except StrategyError:
        raise
    except Exception as exc:
        raise _failed(caller, name, exc) from exc


def call_as(relay: pluggy.HookRelay, name: str, method: Any, /, **kwargs: Any) -> Any:
    """``method(**kwargs)`` standing in for hook ``name`` (a strategy's own method, called
    by the engine without the hook), failing as :func:`call` fails: any exception
    re-raised as a :class:`StrategyError` naming the strategy that answers ``name``."""
    try:
        return method(**kwargs)
    except StrategyError:
        raise
    except Exception as exc:
        raise _failed(getattr(relay, name), name, exc) from exc


def stop_answer(answer: Any, who: str) -> bool:
    """A convergence criterion's answer (``kmeansfw_converged``) as a bool.

    True and False (NumPy's too) are answers; None says nothing (no stop).  Anything
    else (a string, a number, an array) raises a :class:`StrategyError` naming ``who``:
    its truth value would stop the fit, or not, by accident.
    """
    if answer is None:
        return False
    if isinstance(answer, bool | np.bool_):
        return bool(answer)
    text = repr(answer)
    if len(text) > 40:
        text = text[:37] + "..."
    raise StrategyError(
        f"{who} returned {text} (a {type(answer).__name__}) from kmeansfw_converged, "
        "not True, False or None"
    )


def stopped(relay: Any, **kwargs: Any) -> bool:
    """Whether the fit stops: ``kmeansfw_converged`` called on every criterion, each
    answer checked (:func:`stop_answer`), stop when any says True."""
    caller = relay.kmeansfw_converged
    if hasattr(caller, "calls"):  # the engine's resolved hook: each answer checked as it
        # comes, the error naming the criterion at fault
        return any(caller.call_with(kwargs, stop_answer))
    answers = call(relay, "kmeansfw_converged", **kwargs)
    inner = getattr(caller, "caller", caller)  # the engine's wrapper of pluggy's caller
    wrappers = wrapping_plugins(caller)
    if isinstance(inner, pluggy.HookCaller):
        impls = inner.get_hookimpls()
        names = [i.plugin_name for i in impls if not (i.wrapper or i.hookwrapper)]
        who = f"a convergence criterion ({', '.join(names)})"
    else:
        who = getattr(caller, "plugin_name", "<no plugin>")
    who += _wrapping(wrappers)
    if not isinstance(answers, list):  # a wrapper's answer in place of the criteria's list
        raise StrategyError(
            f"{', '.join(wrappers) or who} returned a {type(answers).__name__} from "
            "kmeansfw_converged, not the list of the criteria's answers"
        )
    return any([stop_answer(answer, who) for answer in answers])


def _failed(caller: Any, name: str, exc: Exception) -> StrategyError:
    plugin = answering_plugin(caller)
    return StrategyError(f"{plugin} failed in {name}: {type(exc).__name__}: {exc}")


def wrapping_plugins(caller: Any) -> tuple[str, ...]:
    """Names of the wrappers of a hook (``wrapper=True`` implementations), which may
    change the answer of the implementation :func:`answering_plugin` names."""
    wrappers = getattr(caller, "wrappers", None)
    if wrappers is not None:  # a hook resolved by the engine (kmeansfw.engine.plugins)
        return tuple(wrappers)
    if not isinstance(caller, pluggy.HookCaller):
        return ()
    return tuple(i.plugin_name for i in caller.get_hookimpls() if i.wrapper or i.hookwrapper)


def fail(hook: pluggy.HookRelay, name: str, problem: str) -> StrategyError:
    """Build the error for a contract violation of hook ``name`` (naming its wrappers
    too, when it has any: the answer may be theirs)."""
    caller = getattr(hook, name)
    plugin, wrappers = answering_plugin(caller), wrapping_plugins(caller)
    if plugin == "<no plugin>" and not wrappers:
        return StrategyError(f"no strategy of this fit answers {name} (the hook {problem})")
    return StrategyError(f"{plugin}{_wrapping(wrappers)} {problem} (hook {name})")


def _wrapping(wrappers: tuple[str, ...]) -> str:
    """What an error adds after the answering plugin when the hook has wrappers."""
    return f" (or {', '.join(wrappers)}, wrapping it)" if wrappers else ""


def check_float_array(
    hook: pluggy.HookRelay,
    name: str,
    value: Any,
    shape: tuple[int, ...],
    dtype: np.dtype,
    *,
    nonnegative: bool = False,
    what: str = "array",
) -> np.ndarray:
    """Check a float answer: ndarray of ``shape`` and ``dtype``, finite, (non-negative)."""
    if not (type(value) is np.ndarray and value.dtype == dtype and value.shape == shape):
        value = _float_array(hook, name, value, shape, dtype, what)
    finite, low = finite_min(value)
    if not finite:
        hint = overflow(value.dtype) if what in _COST_ANSWERS else ""
        raise fail(hook, name, f"returned {what} containing NaN or infinity{hint}")
    if nonnegative and low < 0:
        value = clip_round_off(value, low)
        if value is None:
            raise fail(hook, name, f"returned {what} with negative values")
    return value


#: The answers whose NaN or infinity an overflow of the data's dtype may explain.
_COST_ANSWERS = ("costs", "distances", "block", "a block")


def overflow(dtype: Any) -> str:
    """A likely cause of non-finite costs or distances on finite data, added to the error:
    the squared distances passed the dtype's largest value (inf, and inf - inf = NaN),
    because the data's values are that large, or the centroids' (a strategy's fault)."""
    dtype = np.dtype(dtype)
    cure = "fit it as float64 or rescale it" if dtype.itemsize <= 4 else "rescale it"
    return (
        f"; if the data is finite, its squared distances may have passed {dtype}'s largest "
        f"value ({float(np.finfo(dtype).max):.3g}): {cure}; if its values are far from "
        f"that large, the centroids are, and the strategy that made them (the init, "
        f"update or empty-cluster strategy) is at fault"
    )


#: Negative answers down to this many units in the last place of the answer's scale (its
#: largest magnitude) are round-off: ``1 - xn @ cn.T`` gives -2e-16 for a sample equal to
#: its centroid, and a sum of d products may be off by about d ulps.
ROUND_OFF_ULPS = 64


def clip_round_off(value: np.ndarray, low: float | None = None) -> np.ndarray | None:
    """``value`` with round-off negatives set to 0 (a copy), or None for real negatives.

    A negative entry is round-off when its magnitude is at most :data:`ROUND_OFF_ULPS`
    units in the last place of the array's scale, its largest magnitude (a distance
    computed as ``1 - similarity`` or ``|x|^2 - 2 x.c + |c|^2`` cancels to a few ulps
    of that scale).  ``low`` is the array's minimum when the caller knows it already.
    """
    if low is None:
        low = float(value.min()) if value.size else 0.0
    if low >= 0:
        return value
    scale = max(float(np.abs(value).max()), 0.0)
    if -low > ROUND_OFF_ULPS * np.finfo(value.dtype).eps * scale:
        return None
    return np.maximum(value, 0)


def _float_array(
    hook: pluggy.HookRelay,
    name: str,
    value: Any,
    shape: tuple[int, ...],
    dtype: np.dtype,
    what: str,
) -> np.ndarray:
    """``value`` as an ndarray of ``shape`` and ``dtype``, or the error saying why not."""
    if value is None:
        raise fail(hook, name, f"returned no {what}")
    given = ""
    if not isinstance(value, np.ndarray):
        given = f" (a {type(value).__name__}, read as an array of {{}}; return an ndarray)"
        try:
            value = np.asarray(value)
        except Exception:  # noqa: BLE001 - any conversion failure is the strategy's fault
            raise fail(hook, name, f"returned a {type(value).__name__}, not an array") from None
    if value.shape != shape:
        raise fail(hook, name, f"returned {what} of shape {value.shape}, expected {shape}")
    if value.dtype != dtype:
        given = given.format(value.dtype)
        raise fail(
            hook, name, f"returned {what} of dtype {value.dtype}, expected {dtype}{given}"
        )
    return value


def check_pair(hook: pluggy.HookRelay, name: str, value: Any, what: str) -> tuple[Any, Any]:
    """Check that the answer is a pair, e.g. ``(labels, costs)``."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise fail(hook, name, f"did not return a pair {what}")
    return value


def check_labels(
    hook: pluggy.HookRelay, name: str, value: Any, n_rows: int, n_clusters: int
) -> np.ndarray:
    """Check labels: integer array of shape (n_rows,) with values in [0, n_clusters)."""
    if not isinstance(value, np.ndarray) or value.shape != (n_rows,):
        shape = getattr(value, "shape", type(value).__name__)
        raise fail(hook, name, f"returned labels of shape {shape}, expected ({n_rows},)")
    if value.dtype.kind not in "iu":
        raise fail(hook, name, f"returned labels of non-integer dtype {value.dtype}")
    low, high = int_range(value)
    if n_rows and (low < 0 or high >= n_clusters):
        raise fail(hook, name, f"returned labels outside [0, {n_clusters})")
    return value


def check_search(
    hook: pluggy.HookRelay,
    name: str,
    value: Any,
    n_rows: int,
    n_clusters: int,
    dtype: np.dtype,
    rival_shape: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check a bound search's ``(labels, costs, distances, rival_distances)`` answer
    (``kmeansfw_nearest`` with groups of rivals).

    Labels as :func:`check_labels`; costs and distances finite and non-negative; the
    rival distances, of ``rival_shape``, non-negative and not NaN (``inf`` means no rival).
    """
    if not isinstance(value, tuple) or len(value) != 4:
        raise fail(hook, name, "did not return (labels, costs, distances, rival distances)")
    labels, costs, distances, rivals = value
    labels = check_labels(hook, name, labels, n_rows, n_clusters)
    costs = check_float_array(hook, name, costs, (n_rows,), dtype, nonnegative=True, what="costs")
    distances = check_float_array(
        hook, name, distances, (n_rows,), dtype, nonnegative=True, what="distances"
    )
    rivals = _float_array(hook, name, rivals, rival_shape, dtype, "rival distances")
    if rivals.size and not bool((rivals >= 0).all()):  # False for NaN as for negatives
        raise fail(hook, name, "returned rival distances that are negative or NaN")
    return labels, costs, distances, rivals
