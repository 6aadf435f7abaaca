"""The README's quick start runs as written (shortened) and leaves the files the README lists; its links resolve."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _quick_start() -> str:
    text = open(README).read()
    section = text[text.index("## Quick start"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quick_start_leaves_the_files_the_readme_lists(tmp_path, monkeypatch):
    code = _quick_start()
    assert "sim.step(500_000)" in code and "updater.finish()" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("sim.step(500_000)", "sim.step(2_000)"), "README quick start", "exec"), {})
    files = sorted(os.listdir(tmp_path / "run"))
    assert files == ["bias.pt", "checkpoint.pt", "colvar", "fes.dat", "fes_bias.dat", "ves.log"]
    listed = re.search(r"`run/` then holds (.*?)\sonce the learning rate", open(README).read(), re.S).group(1)
    for name in files:
        assert f"`{name}`" in listed, name


@pytest.mark.parametrize("name", ["colvar", "ves.log"])
def test_file_headers_name_their_fields(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    exec(compile(_quick_start().replace("sim.step(500_000)", "sim.step(1_000)"), "README quick start", "exec"), {})
    assert open(tmp_path / "run" / name).readline().startswith("#! FIELDS")


def test_front_page_links_exist():
    """The README links to files of the repository (the results index, its pages, the docs) that exist;
    the option tables and the guide live in docs/ (tests/test_docs.py builds and runs them)."""
    root = os.path.dirname(README)
    text = open(README).read()
    links = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) if "://" not in t]
    assert "benchmarks/RESULTS.md" in links
    for target in links:
        assert os.path.exists(os.path.join(root, target)), target
    assert "docs/" in text and "mkdocs" in text
    results = open(os.path.join(root, "benchmarks", "RESULTS.md")).read()
    for page in re.findall(r"\]\((results/[^)#]+)", results):
        assert os.path.exists(os.path.join(root, "benchmarks", page)), page
