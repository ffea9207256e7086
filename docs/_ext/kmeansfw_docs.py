"""Sphinx extension that assembles kmeansfw's site from the files users read on GitHub.

At build time it writes (none of it is committed):

- ``_generated/readme/NN-<section>.md``: one page per ``##`` section of README.md, each a
  MyST ``{include}`` of that section's lines, so README stays the single source and a new
  README section becomes a new page by itself;
- ``_api_generated.rst``: the autosummary tables of the API reference (included by
  ``api.rst``): every name in ``kmeansfw.__all__`` and every public module of the package,
  found by walking it, so new classes and modules appear without editing the docs.

It also rewrites, in the Markdown it includes, links that point into the repository rather
than into ``docs/`` (``examples``, ``plugins/kmeansfw-geo``, ``kmeansfw/core/hookspecs.py``
...) to the pages of the site that show them.
"""

from __future__ import annotations

import pkgutil
import re
import shutil
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
README = ROOT / "README.md"
GENERATED = DOCS / "_generated"
API_FILE = DOCS / "_api_generated.rst"
GALLERY_OUT = DOCS / "_build" / "examples-out"

# Internal packages and modules the API reference leaves out: compiled inner loops and the
# ``python -m kmeansfw`` entry point (private ``_name`` modules are always left out).
INTERNAL = ("kmeansfw.kernels", "kmeansfw.__main__")

# Repository folders that README and the other Markdown link to, and their page on the site.
FOLDER_PAGES = {
    "examples": "/auto_examples/index.rst",
    "plugins/kmeansfw-geo": "/plugin_geo.md",
}
# Repository files outside docs/ that have a page on the site.
FILE_PAGES = {
    "README.md": "/index.md",
    "CHANGELOG.md": "/changelog.md",
    "CONTRIBUTING.md": "/contributing.md",
}
LINK = re.compile(r"\]\(([^()\s#]+)(#[^()\s]*)?\)")


def _example_out(src_file: str) -> Path:
    return GALLERY_OUT / Path(src_file).stem


def gallery_argv(gallery_conf: dict[str, Any], script_vars: dict[str, Any]) -> list[str]:
    """Command-line arguments of a gallery script: a fresh folder for the files it writes."""
    out = _example_out(script_vars["src_file"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return [str(out)]


_SAVED: dict[Path, int] = {}


def saved_figures(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]) -> str:
    """sphinx-gallery scraper: the PNG files a code block saved in its output folder.

    kmeansfw's plots are built without pyplot (``kmeansfw.workflow.plots``), so
    sphinx-gallery's matplotlib scraper never sees them; the scripts save every figure
    they draw, and this picks up each file written (or rewritten) by the block.
    """
    from sphinx_gallery.scrapers import figure_rst

    new = []
    for png in sorted(_example_out(block_vars["src_file"]).glob("*.png")):
        stamp = png.stat().st_mtime_ns
        if _SAVED.get(png) != stamp:
            _SAVED[png] = stamp
            new.append(png)
    images = []
    for png, image_path in zip(new, block_vars["image_path_iterator"], strict=False):
        shutil.copyfile(png, image_path)
        images.append(image_path)
    return figure_rst(images, gallery_conf["src_dir"])


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def readme_sections(text: str) -> list[tuple[str, int, int]]:
    """``(title, first line, end line)`` of each ``##`` section of README (0-based, end excl.)."""
    lines = text.splitlines()
    starts: list[tuple[str, int]] = []
    fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            starts.append((line[3:].strip(), i))
    ends = [start for _, start in starts[1:]] + [len(lines)]
    return [(title, start, end) for (title, start), end in zip(starts, ends, strict=True)]


def write_readme_pages() -> None:
    """One page per README section under ``_generated/readme/``; stale pages are removed."""
    folder = GENERATED / "readme"
    folder.mkdir(parents=True, exist_ok=True)
    text = README.read_text(encoding="utf-8")
    wanted = {}
    for n, (title, _start, _end) in enumerate(readme_sections(text), 1):
        wanted[f"{n:02d}-{_slug(title)}.md"] = (  # the section is cut in _on_include_read
            "```{include} ../../../README.md\n"
            ":relative-docs: docs/\n"
            ":relative-images:\n"
            "```\n"
        )
    for page in folder.glob("*.md"):
        if page.name not in wanted:
            page.unlink()
    for name, content in wanted.items():
        _write_if_changed(folder / name, content)


def public_modules() -> list[str]:
    """Every importable public module of kmeansfw, by walking the package."""
    import kmeansfw

    names = []
    for info in pkgutil.walk_packages(kmeansfw.__path__, "kmeansfw."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts[1:]):
            continue
        if any(info.name == x or info.name.startswith(x + ".") for x in INTERNAL):
            continue
        names.append(info.name)
    return sorted(names)


def public_names() -> list[str]:
    """``kmeansfw.__all__``, less dunders (the version is on the front page)."""
    import kmeansfw

    return [name for name in kmeansfw.__all__ if not name.startswith("__")]


def write_api_tables() -> None:
    """The autosummary tables that ``api.rst`` includes."""
    import kmeansfw

    top = public_names()
    classes = [n for n in top if isinstance(getattr(kmeansfw, n), type)]
    others = [n for n in top if n not in classes]
    modules = public_modules()
    by_package: dict[str, list[str]] = {}
    for name in modules:
        package = ".".join(name.split(".")[:2])
        by_package.setdefault(package, []).append(name)

    def table(title: str, names: list[str]) -> str:
        rows = "".join(f"   {name}\n" for name in names)
        return (
            f"{title}\n{'-' * len(title)}\n\n"
            f".. autosummary::\n   :toctree: api\n   :nosignatures:\n\n{rows}\n"
        )

    out = [
        ".. This file is written by docs/_ext/kmeansfw_docs.py at build time; do not edit.\n\n",
        table("Classes (``import kmeansfw``)", [f"kmeansfw.{n}" for n in classes]),
        table("Functions and objects (``import kmeansfw``)", [f"kmeansfw.{n}" for n in others]),
    ]
    for package, names in by_package.items():
        out.append(table(f"Modules of ``{package}``", names))
    _write_if_changed(API_FILE, "".join(out))


def _write_if_changed(path: Path, content: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != content:
        path.write_text(content, encoding="utf-8")


def _rewrite_links(text: str, base: Path) -> str:
    """Point links into the repository (outside docs/) at the site's pages or downloads."""
    modules = set(public_modules())

    def replace(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        if "://" in target or target.startswith(("/", "mailto:", "project:", "path:")):
            return match.group(0)
        path = (base / target).resolve()
        try:
            rel = path.relative_to(ROOT).as_posix()
        except ValueError:
            return match.group(0)
        if rel.startswith("docs/") or rel == "docs":
            return match.group(0)  # a page or image of the site: MyST resolves it
        if rel in FOLDER_PAGES:
            return f"]({FOLDER_PAGES[rel]}{anchor})"
        if rel in FILE_PAGES:
            return f"]({FILE_PAGES[rel]}{anchor})"
        if rel.endswith(".py") and rel.startswith("kmeansfw/"):
            module = rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")
            if module in modules:
                return f"](/api/{module}.rst)"
        if path.is_file():
            return f"](path:/../{rel})"  # any other file of the repository: a download
        return match.group(0)

    return LINK.sub(replace, text)


def _on_source_read(app: Any, docname: str, source: list[str]) -> None:
    if app.env.doc2path(docname).suffix == ".md":
        source[0] = _rewrite_links(source[0], app.env.doc2path(docname).parent)


def promote_headings(text: str) -> str:
    """``## X`` -> ``# X`` (and so on) outside code fences; the line count is unchanged.

    README's sections are ``##``; each is a page of the site, whose title must be ``#``.
    """
    lines = text.split("\n")
    fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("##"):
            lines[i] = line[1:]
    return "\n".join(lines)


def _on_include_read(
    app: Any, relative_path: Path, parent_docname: str, content: list[str]
) -> None:
    path = (Path(app.srcdir) / relative_path).resolve()
    if path.suffix == ".md" and DOCS not in path.parents:
        content[0] = _rewrite_links(content[0], path.parent)
    if path == README:
        content[0] = promote_headings(readme_part(content[0], parent_docname))


def readme_part(text: str, page: str) -> str:
    """The part of README a page shows: its intro for ``index``, else the section of page
    ``NN-<slug>``. Other lines are blanked, not removed, so messages give README's lines;
    the section is found by its title when README is read, never by stale line numbers.
    """
    lines = text.split("\n")
    sections = readme_sections(text)
    if page == "index":
        keep = range(1, sections[0][1] if sections else len(lines))  # less the # title
    else:
        spans = [
            range(start, end)
            for n, (title, start, end) in enumerate(sections, 1)
            if f"{n:02d}-{_slug(title)}" == page
        ]
        keep = spans[0] if spans else range(0)
    return "\n".join(line if i in keep else "" for i, line in enumerate(lines))


def _skip_member(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> Any:
    """Leave out scikit-learn's generated ``set_*_request`` methods (metadata routing).

    scikit-learn documents them itself; their docstrings cite its own glossary and labels.
    """
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def _on_config_inited(app: Any, config: Any) -> None:
    GENERATED.mkdir(exist_ok=True)
    write_readme_pages()
    write_api_tables()
    config.autosummary_generate = ["api.rst", API_FILE.name]  # the files with tables
    config.exclude_patterns.append(API_FILE.name)


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _on_config_inited)
    app.connect("source-read", _on_source_read)
    app.connect("include-read", _on_include_read)
    app.connect("autodoc-skip-member", _skip_member)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
