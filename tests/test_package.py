"""The package as pip installs it: pyproject's ranges agree with the pinned requirements files, and the wheel
holds every module and no tests, installs into a fresh virtual environment, and its console script runs.

Two levels. By default (a few seconds, offline): the wheel is built with the setuptools that requirements-dev.txt
pins, installed with ``--no-deps`` into a fresh venv that sees the test environment's packages through a ``.pth``
file, and ``comfyui-gradio --help`` and ``python -m comfyui_gradio --help`` run from a folder outside the
repository. Opt in with ``pytest -m package`` (what ``.ci/run`` does; minutes, needs PyPI): the wheel is built in
pip's isolated build (the backend fetched from PyPI), installed with its declared dependencies into a fresh venv,
and ``comfyui-gradio`` serves the shipped workflows with no ComfyUI running; then ``pip install git+file://``
installs the repository's committed HEAD.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from comfyui_gradio.web.config import parser
from tests.harness import free_port
from tests.paths import ROOT, WORKFLOWS

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DIST_INFO = f"comfyui_gradio-{PYPROJECT['project']['version']}.dist-info/"
# Each pinned requirements file and the pyproject group it pins (None: the package's own dependencies).
PINNED_GROUPS = {"requirements.txt": None, "requirements-dev.txt": "test", "requirements-mcp.txt": "mcp"}
BUILD_INPUTS = ("pyproject.toml", "README.md", "comfyui_gradio")  # what the build reads from the repository
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, comfyui_gradio
for module in pkgutil.walk_packages(comfyui_gradio.__path__, "comfyui_gradio."):
    importlib.import_module(module.name)
"""


def declared(group: str | None) -> dict[str, Requirement]:
    project = PYPROJECT["project"]
    lines = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def pinned(name: str) -> dict[str, Requirement]:
    """The requirements of one file, without the ``-r requirements.txt`` it builds on."""
    found = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("#") or not line:
            continue
        if line.startswith("-r "):
            assert line == "-r requirements.txt", f"{name}: {line}"
            continue
        requirement = Requirement(line)
        found[canonicalize_name(requirement.name)] = requirement
    return found


def disagreements(name: str, pins: dict[str, Requirement], ranges: dict[str, Requirement]) -> list[str]:
    where = "[project.dependencies]" if PINNED_GROUPS[name] is None else f"the [{PINNED_GROUPS[name]}] extra"
    problems = [f"{name}: {pins[key]} is not in {where}" for key in sorted(pins.keys() - ranges.keys())]
    problems += [f"{where}: {ranges[key]} is not pinned in {name}" for key in sorted(ranges.keys() - pins.keys())]
    for key in sorted(pins.keys() & ranges.keys()):
        pin, declared_range = pins[key], ranges[key]
        versions = [spec.version for spec in pin.specifier if spec.operator == "=="]
        if len(versions) != 1 or len(pin.specifier) != 1:
            problems.append(f"{name}: {pin} is not pinned with ==")
        elif not declared_range.specifier.contains(Version(versions[0]), prereleases=True):
            problems.append(f"{name}: {pin} is outside {where}'s {declared_range}")
        if (pin.extras, str(pin.marker or "")) != (declared_range.extras, str(declared_range.marker or "")):
            problems.append(f"{name}: {pin} has other extras or markers than {where}'s {declared_range}")
    return problems


@pytest.mark.parametrize("name", sorted(PINNED_GROUPS))
def test_each_pinned_requirement_is_declared_in_pyproject_and_within_its_range(name: str) -> None:
    assert disagreements(name, pinned(name), declared(PINNED_GROUPS[name])) == []


def test_a_drifted_pin_is_reported_by_name() -> None:
    ranges = {"httpx": Requirement("httpx>=0.28.1,<0.29"), "pillow": Requirement("pillow>=12.3.0,<13")}
    pins = {"httpx": Requirement("httpx==0.29.0"), "pyyaml": Requirement("PyYAML==6.0.3")}
    assert disagreements("requirements.txt", pins, ranges) == [
        "requirements.txt: PyYAML==6.0.3 is not in [project.dependencies]",
        "[project.dependencies]: pillow<13,>=12.3.0 is not pinned in requirements.txt",
        "requirements.txt: httpx==0.29.0 is outside [project.dependencies]'s httpx<0.29,>=0.28.1",
    ]


def test_the_test_extra_asks_for_the_build_backend_that_pip_builds_with() -> None:
    backend = [Requirement(line) for line in PYPROJECT["build-system"]["requires"]]
    assert backend == [declared("test")["setuptools"]]


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline with the installed setuptools from a copy of the build inputs (so the
    repository gets no build/ or egg-info folder)."""
    requirement = Requirement(PYPROJECT["build-system"]["requires"][0])
    try:
        import setuptools
    except ImportError:
        pytest.fail(f"{requirement} is missing: ./test.sh installs it from requirements-dev.txt")
    assert requirement.specifier.contains(setuptools.__version__), \
        f"setuptools {setuptools.__version__} is not {requirement}: ./test.sh installs it from requirements-dev.txt"
    return build_wheel(tmp_path_factory.mktemp("build"), "--no-build-isolation")


def build_wheel(folder: Path, *pip_options: str) -> Path:
    source = folder / "source"
    source.mkdir(parents=True)
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *pip_options, "-w", str(folder / "dist"),
         str(source)], cwd=folder)
    (wheel,) = (folder / "dist").glob("comfyui_gradio-*.whl")
    return wheel


def run(command: list[str], cwd: Path, timeout: float = 120) -> str:
    """``command``'s output; its own environment, so nothing of the test run's (PYTHONPATH) leaks in."""
    done = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return env | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "COLUMNS": "120", "GRADIO_ANALYTICS_ENABLED": "False"} | extra


def fresh_venv(folder: Path, *, with_pip: bool) -> Path:
    """A new virtual environment's ``bin`` folder."""
    run([sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(folder)], cwd=folder.parent)
    return folder / "bin"


def site_packages(bin_dir: Path) -> Path:
    found = run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                cwd=bin_dir)
    return Path(found.strip())


def test_the_wheel_holds_every_module_and_no_tests(built_wheel: Path) -> None:
    names = zipfile.ZipFile(built_wheel).namelist()
    modules = sorted(str(p.relative_to(ROOT).as_posix()) for p in (ROOT / "comfyui_gradio").rglob("*.py")
                     if "__pycache__" not in p.parts)
    assert sorted(n for n in names if not n.startswith(DIST_INFO)) == modules
    entry_points = zipfile.ZipFile(built_wheel).read(DIST_INFO + "entry_points.txt").decode()
    assert entry_points.split() == ["[console_scripts]", "comfyui-gradio", "=", "comfyui_gradio.web.app:main"]


@pytest.mark.process
def test_the_console_script_and_the_module_run_from_a_fresh_venv(built_wheel: Path, tmp_path: Path) -> None:
    bin_dir = fresh_venv(tmp_path / "venv", with_pip=False)
    # The test environment's packages, after the venv's own: the wheel's copy of comfyui_gradio comes first.
    here = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    (site_packages(bin_dir) / "test-environment.pth").write_text("\n".join(here) + "\n", encoding="utf-8")
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(built_wheel)],
        cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = run([str(bin_dir / "python"), "-c", "import comfyui_gradio; print(comfyui_gradio.__file__)"], elsewhere)
    assert Path(where.strip()).is_relative_to(tmp_path / "venv")
    app_help = run([str(bin_dir / "comfyui-gradio"), "--help"], elsewhere)
    assert flags(app_help) == flags(parser().format_help()) >= {"--comfyui-url", "--workflows", "--port", "--mcp"}
    assert "Serve ComfyUI workflows as a Gradio app." in app_help
    cli_help = run([str(bin_dir / "python"), "-m", "comfyui_gradio", "--help"], elsewhere)
    assert "{schema,convert,check,api-docs}" in cli_help


def flags(help_text: str) -> set[str]:
    return set(re.findall(r"--[a-z][a-z-]+", help_text))


@pytest.fixture()
def opted_in(request: pytest.FixtureRequest) -> None:
    """The default -m (pyproject's addopts) does not exclude ``package``: run only when -m names it."""
    if not re.search(r"(?<!not )\bpackage\b", request.config.getoption("markexpr") or ""):
        pytest.skip("installs from PyPI and takes minutes: opt in with pytest -m package")


@pytest.mark.package
@pytest.mark.timeout(1200)
def test_pip_installs_the_wheel_with_its_dependencies_and_the_app_serves(opted_in: None, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "build")  # pip's isolated build: setuptools from PyPI
    bin_dir = fresh_venv(tmp_path / "venv", with_pip=True)
    # Constrained to the tested pins (the ranges would take whatever PyPI has newest).
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / "requirements.txt"), str(wheel)],
        cwd=tmp_path, timeout=900)
    run([str(bin_dir / "python"), "-m", "pip", "check"], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run([str(bin_dir / "python"), "-c", IMPORT_EVERY_MODULE], elsewhere)

    config = serve_once(bin_dir / "comfyui-gradio", elsewhere)
    labels = {c["props"].get("label") for c in config["components"]}
    assert {"Text to image", "Image to image", "Invert colors", "Blur"} <= labels

    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
         f"git+{ROOT.as_uri()}"], cwd=tmp_path, timeout=300)
    frozen = run([str(bin_dir / "python"), "-m", "pip", "freeze"], cwd=tmp_path)
    assert f"comfyui-gradio @ git+{ROOT.as_uri()}@" in frozen
    assert flags(run([str(bin_dir / "comfyui-gradio"), "--help"], elsewhere)) == flags(parser().format_help())


def serve_once(script: Path, cwd: Path) -> dict:
    """Start the app from ``cwd`` with no ComfyUI listening and its port in ``cwd/.env``, wait for its page,
    and return its ``/config``."""
    port = free_port()
    (cwd / ".env").write_text(f"GRADIO_SERVER_PORT={port}\n", encoding="utf-8")  # read from the current folder
    command = [str(script), "--comfyui-url", f"http://127.0.0.1:{free_port()}",
               "--workflows", str(WORKFLOWS), "--outputs", str(cwd / "outputs")]
    log = cwd / "app.log"
    with log.open("w") as out:
        app = subprocess.Popen(command, cwd=cwd, env=clean_env(CACHE_DIR=str(cwd / "cache")), stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 90
        while True:
            assert app.poll() is None, f"the app exited {app.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the app did not serve {url} in 90 s:\n{log.read_text()}"
            try:
                page = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert page.status_code == 200 and "<html" in page.text.lower()
        return httpx.get(url + "config", timeout=5).json()
    finally:
        app.terminate()
        try:
            app.wait(timeout=15)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
