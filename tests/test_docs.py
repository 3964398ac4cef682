"""The documentation: the README stays a front page, the generated parts match the code and the carried files,
the site builds with ``mkdocs build --strict``, and a browser finds the manual's action table on an env page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, **kwargs)


def test_the_readme_is_a_front_page_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    targets = re.findall(r"\]\(([^)#]+)\)", text)
    assert targets and all((ROOT / t).exists() for t in targets), [t for t in targets if not (ROOT / t).exists()]


def test_generated_docs_match_the_code_and_the_carried_files():
    result = _run(sys.executable, "scripts/build_docs.py", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_names_a_stale_table(monkeypatch, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_docs
    finally:
        sys.path.pop(0)
    out = tmp_path / "generated"
    shutil.copytree(build_docs.OUT, out)
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    monkeypatch.setattr(build_docs, "OUT", out)
    monkeypatch.setattr(build_docs, "README", readme)
    assert build_docs.main(["--check"]) == 0
    table = out / "boards" / "v1-summary.md"
    table.write_text(table.read_text().replace("| 10 |", "| 9 |", 1))  # a hand edit of a carried figure
    assert build_docs.main(["--check"]) == 1
    assert f"stale: {table}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = _run(sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out))
    assert result.returncode == 0, result.stdout + result.stderr  # broken links or snippets fail --strict
    return out


def test_the_site_builds_strict_with_every_page(site):
    for page in ("index.html", "environments/llmrepair-v1/index.html", "leaderboards/v1/index.html",
                 "api/index.html"):
        assert (site / page).stat().st_size > 0
    api = (site / "api" / "index.html").read_text()
    assert "score_test" in api and ":class:" not in api  # mkdocstrings rendered, Sphinx roles dropped


def test_headless_chromium_finds_the_action_table_on_an_env_page(site):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        why = "chromium is not installed (Debian's package: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}, and CI={os.environ['CI']!r} is set")
        pytest.skip(why)

    def dom(page: str) -> str:
        return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                               "--dump-dom", (site / page).as_uri()], capture_output=True, text=True,
                              timeout=120).stdout

    index = dom("index.html")
    assert "llm-repair-gym" in index and "<table>" in index
    env = dom("environments/llmrepair-v1/index.html")
    tables = re.findall(r"<table>.*?</table>", env, flags=re.S)
    actions = [t for t in tables if "<th>action</th>" in t]
    assert actions and "<code>train_all</code>" in actions[0] and "<code>probe_heldout</code>" in actions[0]
