"""The documentation builds without a warning, and the Python examples in its pages run.

The site is built with mkdocs-material + mkdocstrings (numpy docstrings) from ``mkdocs.yml`` in strict mode;
the build test is skipped, saying so, only when those tools are not installed (``pip install -e ".[docs]"``).

Every fenced ```python block of ``docs/**/*.md`` is compiled. The blocks of one page run in order in one
namespace (a later block may use names of an earlier one), in a temporary folder, like the README's quick start
in ``tests/test_readme.py``. A block whose first line is the comment ``# docs: skip-run`` (a fragment, or one
that needs a long run or an optional package) is only compiled. Keep executed examples to seconds: tiny step
counts, with the real length in a comment.
"""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
SKIP_RUN = "# docs: skip-run"
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def _pages() -> list:
    pages = []
    for folder, _, files in os.walk(DOCS):
        pages += [os.path.relpath(os.path.join(folder, f), DOCS) for f in files if f.endswith(".md")]
    return sorted(pages)


def _blocks(page: str) -> list:
    with open(os.path.join(DOCS, page), encoding="utf-8") as fh:
        return BLOCK.findall(fh.read())


def _doc_tools_missing() -> list:
    return [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
            if importlib.util.find_spec(m.split(".")[0]) is None
            or (m == "mkdocstrings_handlers.python" and importlib.util.find_spec(m) is None)]


def test_docs_folder_has_pages_and_examples():
    pages = _pages()
    assert "index.md" in pages and "changelog.md" in pages
    assert sum(len(_blocks(p)) for p in pages) >= 5


def test_docs_build_strict_without_warnings(tmp_path):
    missing = _doc_tools_missing()
    if missing:
        pytest.skip(f"doc tools not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
                           "--config-file", os.path.join(ROOT, "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    warnings = [line for line in log.splitlines() if re.match(r"^\s*(WARNING|ERROR)\b", line)]
    assert not warnings, "\n".join(warnings)
    for page in ("index.html", "api/ves/index.html", "guide/deepves/index.html", "changelog/index.html"):
        assert (tmp_path / "site" / page).exists(), page
    # the API reference holds the public names, rendered from their docstrings
    api = (tmp_path / "site" / "api" / "bias" / "index.html").read_text(encoding="utf-8")
    assert 'id="openmm_nnbias.bias.NeuralBiasForce"' in api and 'id="openmm_nnbias.bias.load_bias"' in api


@pytest.mark.parametrize("page", [p for p in _pages() if _blocks(p)])
def test_every_python_block_compiles(page):
    for k, code in enumerate(_blocks(page)):
        compile(code, f"docs/{page} block {k + 1}", "exec")


@pytest.mark.parametrize("page", [p for p in _pages() if any(not b.lstrip().startswith(SKIP_RUN)
                                                             for b in _blocks(p))])
def test_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for k, code in enumerate(_blocks(page)):
        if code.lstrip().startswith(SKIP_RUN):
            continue
        # a real file: TorchScript reads the source of the classes a block scripts
        path = tmp_path / f"docs_block_{k + 1}.py"
        path.write_text(code, encoding="utf-8")
        exec(compile(code, str(path), "exec"), namespace)
