"""Sphinx configuration of kmeansfw's documentation site.

Build it from the repository root with::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The user guide is the Markdown that readers also see on GitHub (README.md's sections,
docs/*.md), included through myst-parser rather than copied; the API reference is generated
from the docstrings of every public module; the gallery runs the scripts in examples/.
The generated parts (``_generated/``, ``api/generated/``, ``auto_examples/``) are written
at build time by ``_ext/kmeansfw_docs.py`` and sphinx-gallery, and are not committed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import kmeansfw  # noqa: E402

project = "kmeansfw"
author = "kmeansfw contributors"
copyright = "kmeansfw contributors"  # noqa: A001
release = kmeansfw.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "kmeansfw_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_templates",
    "_ext",
    "Thumbs.db",
    ".DS_Store",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
    "auto_examples/*.codeobj.json",
]

# -- The user guide: Markdown through myst-parser --------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # README's and docs/*.md's "#section" links resolve

# -- The API reference: autodoc + autosummary + numpydoc ------------------------------------
autosummary_generate = ["api.rst"]  # and the tables api.rst includes (_ext)
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"  # the numpydoc sections say the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # autodoc lists members; numpydoc's table would repeat them
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False


# -- The gallery: sphinx-gallery runs every script in examples/ -----------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example, so every figure is rendered
    "reset_argv": "kmeansfw_docs.gallery_argv",  # each script writes its files under _build
    # kmeansfw's plots are drawn without pyplot and saved by the scripts: show those files
    "image_scrapers": ("matplotlib", "kmeansfw_docs.saved_figures"),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "doc_module": ("kmeansfw",),  # "Examples using KMeans" on the API pages
    "backreferences_dir": "_generated/backreferences",
    "abort_on_example_error": True,
    "capture_repr": (),
    "matplotlib_animations": False,
    "min_reported_time": 1,
}

# -- HTML ----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"kmeansfw {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
