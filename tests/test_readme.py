"""README.md and docs/: absolute links that work on the package index page, every page
reachable, snippets that compile and imports that exist."""

from __future__ import annotations

import ast
import builtins
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
REPO = "https://github.com/django-flexcharge/django-flexcharge"
BLOB = f"{REPO}/blob/main/"
LINK = re.compile(r"\]\(([^)\s]+)\)")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_every_link_in_the_readme_is_absolute():
    relative = [url for url in LINK.findall(README) if not re.match(r"https?://", url)]
    assert relative == []


def test_every_docs_page_is_reachable_from_the_readme_and_every_link_resolves():
    linked = {url.removeprefix(BLOB).split("#")[0] for url in LINK.findall(README)}
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, f"not linked from the README: {sorted(pages - linked)}"
    for url in LINK.findall(README):
        if url.startswith(BLOB):
            path = url.removeprefix(BLOB).split("#")[0]
            assert (ROOT / path).is_file(), f"{url} names a file that does not exist"


def test_the_documentation_url_of_the_package_is_in_the_repository():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Documentation"].startswith(BLOB)
    assert (ROOT / urls["Documentation"].removeprefix(BLOB)).is_file()


def test_every_docs_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f": {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"


#: Names a snippet may use without defining: the settings module it is appended to defines them.
FROM_THE_SETTINGS_FILE = {"INSTALLED_APPS", "__file__"}


@pytest.mark.parametrize("block", PYTHON_BLOCK.findall(README))
def test_every_python_snippet_compiles_and_shows_its_imports(block):
    tree = ast.parse(block)
    defined = set(dir(builtins)) | FROM_THE_SETTINGS_FILE
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert used <= defined, f"used without an import or definition: {sorted(used - defined)}"


def test_the_imports_the_readme_shows_exist():
    (imports,) = [b for b in PYTHON_BLOCK.findall(README) if "from django_flexcharge.signals" in b]
    exec(compile(imports, "README.md", "exec"), {})  # noqa: S102 - our own README's imports
