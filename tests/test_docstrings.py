"""The public API's docstrings follow numpydoc: every public class, function and method
kmeansfw exports (the catalog's, and the research workflow's that README documents) has a
one-line summary that starts with a capital, documents each parameter with a
description, and names no parameter it does not take."""

from __future__ import annotations

import inspect

import attrs
import pytest
from numpydoc.validate import validate

import kmeansfw

#: Checks not asked of every docstring: extended summaries, examples and see-also
#: sections where they help; blank-line layout; a summary's period, person and length;
#: a period after each description; named or described returns of obvious things; the
#: spelling of "str". (numpydoc's own codes, see numpydoc.validate.ERROR_MSGS.)
NOT_CHECKED = {
    "ES01", "EX01", "SA01", "SA04", "GL01", "GL02", "GL03", "GL08",
    "SS03", "SS05", "SS06", "PR09", "RT01", "RT02", "RT03", "PR06",
}  # fmt: skip


def _public() -> dict[str, object]:
    """Qualified name -> object, for each public class, function and own method."""
    from kmeansfw.workflow import experiment, plots, warmup

    objects = [getattr(kmeansfw, name) for name in kmeansfw.__all__ if not name.startswith("_")]
    objects.append(type(kmeansfw.CATALOG))
    # the research workflow README documents
    objects += [experiment.run_experiment, experiment.ExperimentResult]
    objects += [experiment.load_dataset, experiment.load_file, warmup.compile_kernels]
    objects += [plots.plot_clusters, plots.plot_comparison, plots.plot_convergence]
    objects += [plots.plot_experiment]
    found: dict[str, object] = {}
    for obj in objects:
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # the catalog instance and pluggy's markers
        qualified = f"{obj.__module__}.{obj.__qualname__}"
        found[qualified] = obj
        if inspect.isclass(obj):
            for member, value in vars(obj).items():  # its own, not scikit-learn's
                if not member.startswith("_") and (
                    callable(value) or isinstance(value, property | classmethod | staticmethod)
                ):
                    found[f"{qualified}.{member}"] = value
    return found


PUBLIC = _public()


def test_the_public_api_is_collected():
    assert "kmeansfw.estimator.KMeans.fit" in PUBLIC
    assert "kmeansfw.medoids.KMedoids.predict" in PUBLIC
    assert "kmeansfw.core.catalog.Catalog.register" in PUBLIC
    assert "kmeansfw.engine.fitting.fit" in PUBLIC
    assert len(PUBLIC) > 50


@pytest.mark.parametrize("name", list(PUBLIC))
def test_public_docstring_follows_numpydoc(name):
    errors = [(code, text) for code, text in validate(name)["errors"] if code not in NOT_CHECKED]
    if inspect.isclass(PUBLIC[name]) and attrs.has(PUBLIC[name]):
        # an attrs class's fields are its attributes (an "Attributes" section, or each
        # field's comment), not parameters of a constructor a user writes
        errors = [(code, text) for code, text in errors if code != "PR01"]
    assert not errors, f"{name}: {errors}"
