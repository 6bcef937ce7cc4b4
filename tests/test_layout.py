"""The house rules: layers import downwards only, the public surface is small and complete, and the
project reads nothing outside its own folder."""

from __future__ import annotations

import ast
import inspect
import subprocess
import typing
from pathlib import Path

import pytest

import comfyui_gradio
from tests.paths import ROOT

PACKAGE = ROOT / "comfyui_gradio"
# What each layer may not import: forms is pure, comfy talks to servers but knows no Gradio.
FORBIDDEN = {
    "forms": ("comfyui_gradio.comfy", "comfyui_gradio.web", "gradio", "gradio_client", "httpx", "websocket"),
    "comfy": ("comfyui_gradio.web", "comfyui_gradio.compat", "gradio", "gradio_client"),
    "compat": ("comfyui_gradio.web", "gradio", "gradio_client"),
}


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    broken = [f"{path.name} imports {name}" for path in sorted((PACKAGE / layer).glob("*.py"))
              for name in sorted(imports_of(path))
              if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])]
    assert broken == []


def test_the_import_rules_see_relative_imports() -> None:
    assert "comfyui_gradio.forms.schema.TabSpec" in imports_of(PACKAGE / "comfy" / "job.py")
    assert "comfyui_gradio.errors" in imports_of(PACKAGE / "forms" / "prepare.py")


def test_every_module_sits_in_a_layer() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "errors.py"]
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == \
        ["comfy", "compat", "forms", "web"]


def test_the_public_surface_is_exported_and_importable() -> None:
    assert len(comfyui_gradio.__all__) == len(set(comfyui_gradio.__all__))
    for name in comfyui_gradio.__all__:
        assert getattr(comfyui_gradio, name) is not None, name
    public = {name for name in dir(comfyui_gradio) if not name.startswith("_")}
    assert public - set(comfyui_gradio.__all__) <= {"comfy", "compat", "errors", "forms", "web"}  # the subpackages


def test_public_signatures_use_only_exported_types() -> None:
    """What a caller of an exported function or method is handed or must give is exported too."""
    exported = {getattr(comfyui_gradio, name) for name in comfyui_gradio.__all__}
    names = _every_class()  # for annotations imported only under TYPE_CHECKING
    missing = set()
    for name in comfyui_gradio.__all__:
        obj = getattr(comfyui_gradio, name)
        members = [obj] if inspect.isfunction(obj) else [
            member for attr, member in vars(obj).items() if inspect.isfunction(member) and
            (not attr.startswith("_") or attr == "__init__")] if inspect.isclass(obj) else []
        for member in members:
            for hint in typing.get_type_hints(member, localns={**names, **_globals_of(member)}).values():
                missing |= {f"{name}: {t.__module__}.{t.__qualname__}" for t in _classes_in(hint)
                            if t.__module__.startswith("comfyui_gradio") and t not in exported}
    assert missing == set()


def _globals_of(member: object) -> dict[str, object]:
    return dict(vars(inspect.getmodule(member)))


def _every_class() -> dict[str, type]:
    import importlib

    names: dict[str, type] = {}
    for path in PACKAGE.rglob("*.py"):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        names |= {k: v for k, v in vars(module).items() if isinstance(v, type)}
    return names


def _classes_in(hint: object) -> set[type]:
    found = {hint} if isinstance(hint, type) else set()
    for arg in typing.get_args(hint):
        found |= _classes_in(arg)
    return found


def test_nothing_refers_to_a_folder_outside_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    outside = [name for name in tracked if not name.endswith((".md", ".png", ".bin")) and (ROOT / name).is_file()
               and any(ref in (ROOT / name).read_text(errors="ignore") for ref in ("../" + "shared", "/" + "work/"))]
    assert outside == [], "these read a folder a fresh clone elsewhere does not have"
