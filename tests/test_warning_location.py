"""kmeansfw's warnings name the line of the program that asked for the work, whichever
way the call came in (``fit``, scikit-learn's ``fit_predict`` and pipelines, ``predict``,
``kmeansfw.fit``, the experiment runner), never a line inside kmeansfw or scikit-learn:
a warning pointing there hides where it came from, and filters by module miss it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import kmeansfw
from kmeansfw.workflow.checkpoint import CheckpointWarning

_rng = np.random.default_rng(0)
# two groups of 4-feature blobs 1e5 apart in float32: labels the rounding picks
FAR = np.vstack([_rng.normal(size=(2000, 4)), _rng.normal(size=(2000, 4)) + 1e5]).astype(
    np.float32
)
DUPLICATES = np.repeat(np.eye(2), 10, axis=0)  # two distinct points: fewer than k=3


def _fitted_far() -> kmeansfw.KMeans:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kmeansfw.PrecisionWarning)
        return kmeansfw.KMeans(8, random_state=0).fit(FAR)


def _checkpointed(tmp_path):
    kmeansfw.KMeans(2, random_state=0, checkpoint=tmp_path).fit(DUPLICATES)
    return lambda: kmeansfw.KMeans(2, random_state=0, checkpoint=tmp_path).fit(DUPLICATES + 1)


CASES = {
    "fit": (kmeansfw.PrecisionWarning, lambda: kmeansfw.KMeans(8, random_state=0).fit(FAR)),
    "fit_predict": (
        kmeansfw.PrecisionWarning,
        lambda: kmeansfw.KMeans(8, random_state=0).fit_predict(FAR),
    ),
    "pipeline": (
        kmeansfw.PrecisionWarning,
        lambda: make_pipeline(FunctionTransformer(), kmeansfw.KMeans(8, random_state=0)).fit(FAR),
    ),
    "predict": (kmeansfw.PrecisionWarning, lambda: _fitted_far().predict(FAR)),
    "fewer clusters": (
        ConvergenceWarning,
        lambda: kmeansfw.KMeans(3, random_state=0).fit_transform(DUPLICATES),
    ),
    "search": (
        ConvergenceWarning,
        lambda: GridSearchCV(kmeansfw.KMeans(3, random_state=0), {"n_init": [1]}, cv=2).fit(
            DUPLICATES
        ),
    ),
    "kmeansfw.fit": (
        ConvergenceWarning,
        lambda: kmeansfw.fit(DUPLICATES, {"n_clusters": 3, "random_state": 0}),
    ),
    "KMedoids": (ConvergenceWarning, lambda: kmeansfw.KMedoids(3, random_state=0).fit(DUPLICATES)),
    "explicit init": (
        RuntimeWarning,
        lambda: kmeansfw.KMeans(2, init=DUPLICATES[[0, -1]], n_init=3).fit(DUPLICATES),
    ),
    "pairing": (
        kmeansfw.PairingWarning,
        lambda: kmeansfw.KMeans(2, distance="manhattan", update="mean").fit(DUPLICATES),
    ),
    "init_size": (
        RuntimeWarning,
        lambda: kmeansfw.MiniBatchKMeans(3, init_size=2, random_state=0).fit(FAR[:100]),
    ),
}


@pytest.mark.parametrize("case", [*CASES, "checkpoint"])
def test_a_warning_names_the_line_that_asked_for_the_work(case, tmp_path):
    if case == "checkpoint":
        category, call = CheckpointWarning, _checkpointed(tmp_path)
    else:
        category, call = CASES[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    ours = [w for w in caught if issubclass(w.category, category)]
    assert ours, f"{case}: no {category.__name__} raised"
    assert {w.filename for w in ours} == {__file__}, [(w.filename, w.lineno) for w in ours]


def test_a_filter_by_the_program_s_module_silences_them():
    # a module filter matches the location: before, scikit-learn's base module was
    # the location of a fit_predict's warning, and kmeansfw's of a fit's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ConvergenceWarning, module=__name__)
        kmeansfw.KMeans(3, random_state=0).fit_predict(DUPLICATES)


def test_fits_and_predictions_leave_the_process_s_warning_filters_alone():
    # warnings.catch_warnings swaps the filters of the whole process: two threads in and
    # out of it at once left "ignore every warning" installed (scikit-learn's tag lookup
    # ran one at every predict); no kmeansfw code that fits or predicts may enter one
    import sys

    real, callers = warnings.catch_warnings, []

    def spy(*args, **kwargs):
        callers.append(sys._getframe(1).f_code.co_filename)
        return real(*args, **kwargs)

    X = np.random.default_rng(1).normal(size=(300, 3))
    before = list(warnings.filters)
    warnings.catch_warnings = spy
    try:
        for est in (
            kmeansfw.KMeans(3, random_state=0),
            kmeansfw.KMeans(3, distance="manhattan", random_state=0),
            kmeansfw.MiniBatchKMeans(3, random_state=0),
            kmeansfw.KMedoids(3, random_state=0),
        ):
            est.fit(X)
            est.predict(X)
            est.transform(X)
            est.score(X)
    finally:
        warnings.catch_warnings = real
    package = kmeansfw.__file__.rsplit("__init__.py", 1)[0]
    assert not [c for c in callers if c.startswith(package)], callers
    assert warnings.filters == before


def test_python_dash_m_names_the_entry_module_not_runpy(tmp_path):
    # ``python -m kmeansfw`` has no frame of a program of the user's: its warnings named
    # ``<frozen runpy>``, a file that does not exist; now the entry module's line, as
    # the ``kmeansfw`` script names its own.  A program that runs the command line
    # through runpy is named itself, and so is a program that happens to be called
    # runpy.py (not the standard library's runpy).
    import os
    import subprocess
    import sys

    data = tmp_path / "duplicates.npy"
    np.save(data, DUPLICATES)
    arguments = ["fit", "-k", "3", "--seed", "0", "--out", str(tmp_path / "out"), str(data)]
    through_runpy = tmp_path / "through.py"
    through_runpy.write_text(
        "import runpy, sys\n"
        f"sys.argv = ['kmeansfw', *{arguments!r}]\n"
        "try:\n"
        "    runpy.run_module('kmeansfw', run_name='__main__')  # line 4\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    named_runpy = tmp_path / "runpy.py"
    named_runpy.write_text(
        "import numpy as np, kmeansfw\n"
        f"X = np.load({str(data)!r})\n"
        "kmeansfw.KMeans(3, random_state=0).fit(X)  # line 3\n"
    )
    cases = [
        ([sys.executable, "-m", "kmeansfw", *arguments], os.path.join("kmeansfw", "__main__.py:")),
        ([sys.executable, str(through_runpy)], f"{through_runpy}:4:"),
        ([sys.executable, str(named_runpy)], f"{named_runpy}:3:"),
    ]
    for command, location in cases:
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path)
        lines = [line for line in done.stderr.splitlines() if "ConvergenceWarning" in line]
        assert lines, (command, done.stderr)
        assert all(location in line for line in lines), (location, lines)
        assert "<frozen runpy>" not in done.stderr


def test_every_fit_gives_the_pairing_warning_whoever_built_its_strategies_first():
    # the strategies of plain parameters are built once and kept for later fits; a tag
    # lookup (scikit-learn's searches and cross-validation make one before fitting)
    # built them without the warning, and the fits then reused them silently: a
    # mismatched pairing went unsaid in every search and cross-validation
    from sklearn.model_selection import cross_val_score
    from sklearn.utils import get_tags

    X = _rng.normal(size=(60, 3))

    def pairings(call):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        return [w for w in caught if issubclass(w.category, kmeansfw.PairingWarning)]

    def model(k):
        return kmeansfw.KMeans(k, distance="manhattan", update="mean", random_state=0)

    assert len(pairings(lambda: model(2).fit(X))) == 1
    assert len(pairings(lambda: model(2).fit(X))) == 1  # the kept strategies: again
    assert len(pairings(lambda: (get_tags(model(3)), model(3).fit(X)))) == 1
    assert len(pairings(lambda: cross_val_score(model(4), X, cv=2))) == 2
    found = pairings(lambda: GridSearchCV(model(5), {"n_init": [1]}, cv=2).fit(X))
    assert len(found) == 3  # two folds and the refit
    assert {w.filename for w in found} == {__file__}
    fitted = model(6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kmeansfw.PairingWarning)
        fitted.fit(X)
    assert pairings(lambda: (fitted.predict(X), fitted.score(X), get_tags(fitted))) == []
    # a natural pairing never warns
    natural = kmeansfw.KMeans(2, distance="manhattan", random_state=0)
    assert pairings(lambda: (get_tags(natural), natural.fit(X))) == []
