"""The allowed imports of docs/architecture.md, enforced: layers only import downwards,
connectors see only the contract, the core never imports a vendor module, and no module
imports itself back through a circle."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer and those below it, never one above.
LAYERS = [
    ["relay_core", "relay_core.errors", "relay_core.models"],
    ["relay_core.secrets", "relay_core.config", "relay_core.contract"],
    ["relay_core.store", "relay_core.mail", "relay_core.rendering"],
    ["relay_core.records"],
    ["relay_core.cycle", "relay_core.runtime"],
    ["relay_core.web"],
    ["relay_core.commands"],
]
CONNECTOR_MAY_IMPORT = ("relay_core.contract", "relay_core.models", "relay_core.errors")
VENDOR = "relay_core.connectors"


def _modules() -> dict[str, Path]:
    found = {}
    for path in [*ROOT.glob("relay_core/**/*.py"), *ROOT.glob("connectors/*.py")]:
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts or parts[:2] == ("relay_core", "connectors"):
            continue   # frozen snapshots; the checkout's pointer to connectors/
        if parts[0] == "connectors":
            parts = ("relay_core", *parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every project module `name` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            named.add(module)
            named.update(f"{module}.{alias.name}" for alias in node.names)
    # Importing a module runs its parent packages first: that is no dependency of ours.
    return {m for m in named if m in MODULES and not name.startswith(m + ".") and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    best, length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and the map"
    return best


def test_every_module_is_in_a_layer():
    for module in GRAPH:
        if not module.startswith(VENDOR):
            _layer(module)


def test_layers_import_only_downwards():
    upward = [f"{m} → {d}" for m, deps in GRAPH.items() if not m.startswith(VENDOR)
              for d in deps if not d.startswith(VENDOR) and _layer(d) > _layer(m)]
    assert upward == []


def test_connectors_import_only_the_contract_models_and_errors():
    outside = [f"{m} → {d}" for m, deps in GRAPH.items() if m.startswith(VENDOR)
               for d in deps if not d.startswith((VENDOR, *CONNECTOR_MAY_IMPORT))]
    assert outside == []


def test_the_core_never_imports_a_vendor_module_by_name():
    named = [f"{m} → {d}" for m, deps in GRAPH.items() if not m.startswith(VENDOR)
             for d in deps if d.startswith(VENDOR)]
    assert named == []


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:   # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for dep in GRAPH[module]:
            if dep not in index:
                visit(dep)
                low[module] = min(low[module], low[dep])
            elif dep in stack:
                low[module] = min(low[module], index[dep])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert circles == []


def test_importing_the_core_loads_no_vendor_module():
    # A fresh interpreter: importing every core entry point (CLI, service, cycle) must not
    # load a single connector; the registry imports one only when a source names it.
    code = ("import sys, relay_core.commands.cli, relay_core.web.app, relay_core.cycle.run, "
            "relay_core.contract.registry, relay_core.runtime\n"
            "print(sorted(m for m in sys.modules if m.startswith('relay_core.connectors.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_configured_source_loads_only_its_own_vendor_module(tmp_path):
    code = ("import sys\n"
            "from relay_core.config import load_config\n"
            "from relay_core.contract.registry import build_connectors\n"
            f"build_connectors(load_config({str(ROOT / 'config.example.toml')!r}))\n"
            "print(sorted(m for m in sys.modules if m.startswith('relay_core.connectors.')))")
    # This checkout's code, also when the interpreter has another checkout installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env=env).stdout
    assert out.strip() == "['relay_core.connectors.hrmos_export']"


def test_registry_refuses_a_class_registered_under_another_type(monkeypatch):
    from relay_core.contract import registry

    monkeypatch.setitem(registry.CONNECTORS, "lever",
                        "relay_core.connectors.greenhouse:Greenhouse")
    try:
        registry.connector_class("lever")
    except RuntimeError as exc:
        assert "declares type 'greenhouse'" in str(exc)
    else:
        raise AssertionError("a mismatched registration was accepted")
