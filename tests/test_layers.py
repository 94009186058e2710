"""The import layers of docs/architecture.md: no library module imports a layer above its own, or a command.

LAYERS is the one statement of the order. A module belongs to the layer of the longest prefix that names it: a
package covers its submodules, so a new module of a package needs no entry (`acan_tf` names the root __init__
only). A command is a module run as a program (`if __name__ == "__main__":`, or a package's `__main__.py`): it
sits above every layer and no module imports it.
"""

from __future__ import annotations

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "acan_tf")

ROOT = "acan_tf"  # in LAYERS, the package's own __init__ only
# Lowest first. A module may import its own layer and those below it.
LAYERS = (
    ("acan_tf", "acan_tf.errors", "acan_tf.io", "acan_tf.logs", "acan_tf.versions"),
    ("acan_tf.config",),
    ("acan_tf.flags",),
    ("acan_tf.run_dir",),
    ("acan_tf.data",),
    ("acan_tf.losses",),
    ("acan_tf.model",),
    ("acan_tf.evaluation",),
    ("acan_tf.training",),
    ("acan_tf.deploy",),
    ("acan_tf.evaluation.runner",),  # evaluates a run (the model) or an export (deploy's SavedModel)
    ("acan_tf.experiments",),
)


def module_name(path: str) -> str:
    """The dotted name of a source file of the package."""
    relative = os.path.relpath(path, os.path.dirname(PACKAGE))[: -len(".py")]
    parts = relative.split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, ast.Module]:
    """Every module of the package, parsed, by dotted name."""
    trees = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as handle:
                    trees[module_name(path)] = ast.parse(handle.read(), path)
    return trees


def is_command(name: str, tree: ast.Module) -> bool:
    """Whether a module is run as a program."""
    if name.endswith(".__main__"):
        return True
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)


def imported_modules(name: str, tree: ast.Module, modules: set[str]) -> set[str]:
    """The package's modules that `name` imports (anywhere in it): `from a import b` is a.b when b is a module."""
    package = name if name in modules and any(m.startswith(name + ".") for m in modules) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 packages
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module == "acan_tf" or module.startswith("acan_tf.")}


def layer(name: str) -> int:
    """The index in LAYERS of a library module: that of the longest prefix naming it."""
    matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS) for prefix in prefixes
               if name == prefix or (prefix != ROOT and name.startswith(prefix + "."))]
    if not matches:
        raise AssertionError(f"{name} is in no layer: add it (or its package) to LAYERS in {__file__} and to "
                             "docs/architecture.md")
    return max(matches)[1]


def test_no_module_imports_a_layer_above_its_own_or_a_command():
    trees = sources()
    modules = set(trees)
    commands = {name for name, tree in trees.items() if is_command(name, tree)}
    wrong = []
    for name, tree in sorted(trees.items()):
        for target in sorted(imported_modules(name, tree, modules)):
            if target in commands and target != name:
                wrong.append(f"{name} imports the command {target}")
            elif name not in commands and target not in commands and layer(target) > layer(name):
                wrong.append(f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "name, imports, expected",
    [
        ("acan_tf.training.trainer", "from acan_tf.deploy import exporter", "acan_tf.deploy.exporter"),
        ("acan_tf.model.builder", "import acan_tf.evaluation.metrics", "acan_tf.evaluation.metrics"),
        ("acan_tf.data.records", "from ..config import Config", "acan_tf.config"),
        ("acan_tf.model", "from .encoder import build_encoder", "acan_tf.model.encoder"),
    ],
)
def test_imports_are_resolved_to_modules(name, imports, expected):
    modules = {"acan_tf", "acan_tf.config", "acan_tf.deploy", "acan_tf.deploy.exporter", "acan_tf.model",
               "acan_tf.model.encoder", "acan_tf.model.builder", "acan_tf.evaluation.metrics", name}
    assert imported_modules(name, ast.parse(imports), modules) == {expected}


def test_a_module_takes_the_layer_of_its_longest_prefix():
    assert layer("acan_tf.evaluation.metrics") == layer("acan_tf.evaluation") < layer("acan_tf.training")
    assert layer("acan_tf.evaluation.runner") > layer("acan_tf.deploy.exporter")
    assert layer("acan_tf.data.ingest.folders") == layer("acan_tf.data")  # a new module of a package
    with pytest.raises(AssertionError, match="acan_tf.newmodule is in no layer"):
        layer("acan_tf.newmodule")


def test_commands_are_the_modules_run_as_programs():
    commands = {name for name, tree in sources().items() if is_command(name, tree)}
    assert {"acan_tf.train", "acan_tf.evaluate", "acan_tf.export", "acan_tf.convert_weights", "acan_tf.camera_stats",
            "acan_tf.experiments.__main__", "acan_tf.data.check"} <= commands
    assert "acan_tf.training.trainer" not in commands
