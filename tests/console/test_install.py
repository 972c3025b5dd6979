"""A non-editable install runs: the wheel carries the stylesheets and the default config as package data, and the
installed `paperdesk` works from a directory that has no config and no checkout in sight.

The wheel is built from a copy of the repo (an in-tree build would leave build/ and *.egg-info in the checkout) with
the venv's own setuptools: --no-build-isolation, --no-index and --no-deps, so nothing touches the network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import write_config

REPO = Path(__file__).resolve().parents[2]
# what a build never needs: the venv, VCS data, caches, build leftovers, databases, the tests and benchmarks
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache",
                                     ".ruff_cache", ".hypothesis", "build", "dist", "*.egg-info", "*.sqlite*",
                                     "tests", "bench")
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")

# Runs in a child `python -I` (no cwd, no PYTHON* variables, no user site on sys.path), with the --target directory
# put first on sys.path: the venv still provides the dependencies, but paperdesk comes from the wheel. It calls the
# wheel's own `paperdesk` console-script entry point, then reports where the console's stylesheet is.
_CHILD = r"""
import sys
from importlib.metadata import distributions

site = sys.argv[1]
sys.path.insert(0, site)
(dist,) = [d for d in distributions(path=[site]) if d.metadata["Name"] == "paperdesk"]
(script,) = [e for e in dist.entry_points if e.group == "console_scripts" and e.name == "paperdesk"]
main = script.load()
import console
print("console-module", console.__file__, flush=True)
rc = main(sys.argv[2:])
import console.app  # after the run: the headless mode never imports Textual
print("css-path", *console.app.PaperdeskApp.CSS_PATH, flush=True)
sys.exit(rc)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if tuple(int(p) for p in version("setuptools").split(".")[:2]) < (70, 1):
        pytest.fail(f"setuptools {version('setuptools')} in the venv cannot build a wheel on its own; "
                    "`make install` brings the test extra's setuptools>=70.1")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCE)
    result = subprocess.run([*PIP, "wheel", "--no-index", "--no-deps", "--no-build-isolation", "--quiet",
                             "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (tmp / "dist").glob("paperdesk-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("installed") / "site"
    result = subprocess.run([*PIP, "install", "--no-index", "--no-deps", "--no-compile", "--quiet",
                             "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def installed_paperdesk(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-I", "-c", _CHILD, str(site), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=90)


def _line(stdout: str, tag: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(tag + " ")).removeprefix(tag + " ")


def _paperdesk_lines(stdout: str) -> list[str]:
    """What paperdesk printed, without the child's own report lines."""
    return [line for line in stdout.splitlines() if not line.startswith(("console-module ", "css-path "))]


def test_the_wheel_ships_the_stylesheets_and_the_default_config(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "console/config.toml" in names
        assert zf.read("console/config.toml") == (REPO / "config.toml").read_bytes()
        stylesheets = sorted((REPO / "themes").glob("*.tcss"))
        assert stylesheets, "themes/ has no .tcss"
        for tcss in stylesheets:
            assert f"console/themes/{tcss.name}" in names
            assert zf.read(f"console/themes/{tcss.name}") == tcss.read_bytes()


def test_the_installed_wheel_runs_a_headless_session_from_an_empty_directory(site, tmp_path):
    workdir = tmp_path / "empty"
    workdir.mkdir()
    result = installed_paperdesk(site, workdir, "run", "--no-ui", "--duration", "3")
    assert result.returncode == 0, result.stdout + result.stderr

    # paperdesk came from the wheel, not from the checkout (the venv's editable install maps `console` there)
    assert Path(_line(result.stdout, "console-module")).resolve().is_relative_to(site.resolve())
    for css in map(Path, _line(result.stdout, "css-path").split()):  # the console's stylesheets (several themes)
        assert css.is_file() and css.resolve().is_relative_to(site.resolve())

    lines = _paperdesk_lines(result.stdout)
    assert " start " in lines[0]
    summary = lines[-1]
    assert " summary stopped_by=duration " in summary
    assert int(re.search(r"\bdecisions=(\d+)", summary).group(1)) > 0  # the built-in strategies ran on bars
    # the built-in config's database goes to the current directory, never into site-packages
    assert f"db={workdir.resolve() / 'paperdesk.sqlite'}" in lines[0].split()
    assert (workdir / "paperdesk.sqlite").is_file()
    assert not list(site.rglob("*.sqlite*"))


def test_the_installed_wheel_prefers_a_config_toml_in_the_current_directory(site, tmp_path):
    workdir = tmp_path / "desk"
    workdir.mkdir()
    write_config(workdir / "config.toml")  # a fast config whose strategies fill within seconds
    result = installed_paperdesk(site, workdir, "run", "--no-ui", "--duration", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _paperdesk_lines(result.stdout)
    assert f"db={workdir.resolve() / 'paperdesk.sqlite'}" in lines[0].split()
    summary = lines[-1]
    assert " summary stopped_by=duration " in summary
    assert int(re.search(r"\bfills=(\d+)", summary).group(1)) > 0
    assert (workdir / "paperdesk.sqlite").is_file()


def test_a_checkout_reads_the_root_config_and_themes_through_the_package_links():
    """`make run` (an editable install) uses the files a user edits, and keeps its database beside config.toml."""
    from console.app import PaperdeskApp
    from console.cli import DEFAULT_CONFIG, _store_base

    assert DEFAULT_CONFIG == (REPO / "config.toml").resolve()
    assert [Path(p).resolve() for p in PaperdeskApp.CSS_PATH] == \
        [(REPO / "themes" / name).resolve() for name in ("paperdesk.tcss", "high-contrast.tcss")]
    assert _store_base(DEFAULT_CONFIG) == REPO.resolve()
