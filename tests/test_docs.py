"""The README is a front door and the documentation site is whole: checked without building it."""

from __future__ import annotations

import re

import yaml

from sim.paths import REPO_ROOT


def test_readme_is_at_most_250_lines_and_names_the_install_the_main_job_and_the_test_command():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for command in (
        'pip install "torch==2.13.0" -e ".[dev]"',
        "python train.py && python evaluate.py",
        "python -m pytest",
    ):
        assert command in text, command
    assert "results/<scenario>-<time>/" in text and "report.md" in text


def test_every_page_in_the_site_navigation_exists():
    nav = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())["nav"]
    pages = [page for entry in nav for page in entry.values()]
    assert pages[0] == "index.md"
    for page in pages:
        assert (REPO_ROOT / "docs" / page).is_file(), page


def test_the_readme_picture_is_in_the_repository():
    for text, folder in (
        ((REPO_ROOT / "README.md").read_text(), REPO_ROOT),
        ((REPO_ROOT / "docs" / "index.md").read_text(), REPO_ROOT / "docs"),
    ):
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            assert (folder / image).is_file(), image


def test_dev_extra_has_the_notebook_and_docs_tools():
    block = re.search(r"^dev = \[(.*?)\]$", (REPO_ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    names = {re.split(r"[<>=\[]", d, maxsplit=1)[0] for d in re.findall(r'"([^"]+)"', block)}
    assert {"nbconvert", "jupyterlab", "mkdocs", "mkdocs-material", "mkdocstrings"} <= names


def test_the_site_home_page_is_the_readme_with_links_relative_to_docs():
    readme = (REPO_ROOT / "README.md").read_text()
    index = (REPO_ROOT / "docs" / "index.md").read_text()
    assert index.split("\n", 1)[1] == readme.replace("](docs/", "](")
