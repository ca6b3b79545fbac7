"""Packaging and layout (docs/architecture.md §2): the rooms import, the stdlib `platform` is never shadowed,
the CLI helps, docker-compose.yml agrees with the settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_stdlib_platform_is_not_shadowed_under_pytest():
    import platform

    assert platform.system() == "Linux"
    assert Path(platform.__file__).parent != ROOT / "platform"


def test_stdlib_platform_from_the_repo_root():
    out = subprocess.run([sys.executable, "-c", "import platform; print(platform.system())"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Linux"


def test_rooms_import_as_gradwalk_subpackages():
    code = ("import gradwalk.platform, gradwalk.workers, gradwalk.graph, gradwalk.graph.store.adapter, "
            "gradwalk.workers.app; print('ok')")
    for cwd in (ROOT, Path("/")):
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False)
        assert out.stdout.strip() == "ok", out.stderr


# The rooms at the top level, each reached as ``gradwalk.<room>`` through a relative symlink in
# gradwalk/ (docs/architecture.md §2): plain files that type checkers, editors and import-linter follow.
ROOMS = {"gradwalk.platform": "platform", "gradwalk.workers": "workers", "gradwalk.graph": "graph",
         "gradwalk.migrations": "migrations"}


def test_the_package_reaches_exactly_the_rooms_by_relative_symlinks():
    """Relative, so a clone, a copy or a container's work folder keeps them pointing at its own rooms."""
    links = {f"gradwalk.{path.name}": str(path.readlink()) for path in (ROOT / "gradwalk").iterdir()
             if path.is_symlink()}
    assert links == {name: f"../{folder}" for name, folder in ROOMS.items()}
    assert not any((ROOT / folder / "__init__.py").exists() for folder in ROOMS.values())


_IMPORTABLE = """
import importlib, json, os
found = {}
for name in ("gradwalk.platform", "gradwalk.workers", "gradwalk.graph", "gradwalk.migrations",
             "gradwalk.gradwalk", "gradwalk.tests", "gradwalk.benchmarks", "gradwalk.services"):
    try:
        found[name] = [os.path.realpath(path) for path in importlib.import_module(name).__path__]
    except ModuleNotFoundError:
        pass
print(json.dumps(found))
"""


@pytest.mark.parametrize(("cwd", "flags"), [(ROOT, []), (Path("/"), []), (ROOT, ["-S"])],
                         ids=["installed-from-root", "installed-from-elsewhere", "bare-checkout"])
def test_exactly_the_rooms_map_into_the_package(cwd, flags):
    """Only the rooms resolve under ``gradwalk``, each to its own folder: no second copy of the
    package (``gradwalk.gradwalk``) with error classes that are not the real ones. ``-S`` skips
    the install, so the checkout's own folder is what ``import gradwalk`` finds."""
    out = subprocess.run([sys.executable, *flags, "-c", _IMPORTABLE], cwd=cwd, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == {name: [str(ROOT / folder)] for name, folder in ROOMS.items()}


def test_every_code_folder_is_a_packaged_subpackage():
    """A folder of modules missing from pyproject's package list would be absent from a built wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for package, folder in ROOMS.items():
        for module in (ROOT / folder).rglob("*.py"):
            parts = module.parent.relative_to(ROOT / folder).parts
            assert ".".join((package, *parts)) in listed, f"{module.relative_to(ROOT)}: add its package to pyproject"


_WHEEL_IMPORTS = """
import gradwalk, json, platform, sys
import gradwalk.graph.selection.walk, gradwalk.platform.interfaces.api, gradwalk.workers.app
from importlib.resources import files
own = [path for name, module in sys.modules.items() if name.split(".")[0] == "gradwalk"
       for path in (module.__file__, *getattr(module, "__path__", [])) if path]
print(json.dumps([platform.system(), own, sorted(p.name for p in files("gradwalk.migrations").iterdir())]))
"""


def test_a_built_wheel_carries_the_rooms_as_files(tmp_path):
    """A wheel holds the rooms' files themselves inside ``gradwalk/`` (no links), and its modules
    import from the install alone, away from the checkout. Built from a copy of what the Dockerfile
    copies, links kept, so no ``build/`` folder of the checkout leaks stale files into it."""
    import shutil
    import stat
    import zipfile

    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "gradwalk", *ROOMS.values()):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
                   capture_output=True, text=True, timeout=600, check=True)
    (wheel,) = (tmp_path / "dist").glob("gradwalk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entries = archive.infolist()
    assert not [entry.filename for entry in entries if stat.S_ISLNK(entry.external_attr >> 16)]
    names = {entry.filename for entry in entries}
    expected = {f"gradwalk/{path.relative_to(ROOT)}" for folder in ("platform", "workers", "graph")
                for path in (ROOT / folder).glob("**/*.py")}
    assert expected <= names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   capture_output=True, text=True, timeout=300, check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", _WHEEL_IMPORTS], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    system, own, migrations = json.loads(out.stdout)
    assert system == "Linux" and len(own) > 10
    assert [path for path in own if not Path(path).is_relative_to(site / "gradwalk")] == []
    assert migrations == sorted(path.name for path in (ROOT / "migrations").glob("*.cypher"))


def test_no_benchmark_shadows_a_stdlib_module():
    """Run as a script, a benchmark's folder comes first on sys.path; a ``select.py`` there would
    replace the stdlib's for subprocess, torch and everything else."""
    names = {script.stem for script in (ROOT / "benchmarks").glob("*.py")}
    assert names and not names & sys.stdlib_module_names


def test_package_face_stays_light():
    out = subprocess.run(
        [sys.executable, "-c", ("import sys, gradwalk; gradwalk.__version__; "
                                "print(sorted(m for m in ('torch', 'celery', 'neo4j') if m in sys.modules))")],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "[]"


# What `from gradwalk import Client` may load of gradwalk: the client and what it shares with the
# server, nothing of the server itself. Its import time is measured by benchmarks/client_import.py.
CLIENT_SIDE = {"gradwalk", "gradwalk.atomic", "gradwalk.errors", "gradwalk.statuses", "gradwalk.platform",
               "gradwalk.platform.interfaces", "gradwalk.platform.interfaces.client",
               "gradwalk.platform.interfaces.client_records", "gradwalk.platform.versions",
               "gradwalk.platform.versions.exports", "gradwalk.platform.shared", "gradwalk.platform.shared.schemas",
               "gradwalk.platform.shared.waiting"}


def test_client_stays_light():
    heavy = ('torch', 'celery', 'kombu', 'neo4j', 'numpy', 'datasets', 'fastapi', 'starlette')
    out = subprocess.run(
        [sys.executable, "-c", ("import json, sys; from gradwalk import Client; Client; print(json.dumps("
                                f"[sorted(m for m in {heavy!r} if m in sys.modules), "
                                "sorted(m for m in sys.modules if m.split('.')[0] == 'gradwalk')]))")],
        capture_output=True, text=True, check=True,
    )
    loaded_heavy, loaded_own = json.loads(out.stdout)
    assert loaded_heavy == []
    assert set(loaded_own) == CLIENT_SIDE, "the client should load only what it shares with the server"


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("gradwalk")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, check=False)


def _command_paths() -> list[list[str]]:
    """Every command and group the CLI has, found by walking its tree (new commands are included)."""
    import typer

    from gradwalk.platform.interfaces.cli import app

    def walk(command, path: list[str]) -> list[list[str]]:
        subcommands = getattr(command, "commands", {})
        return [path, *(p for name, sub in subcommands.items() for p in walk(sub, [*path, name]))]

    return walk(typer.main.get_command(app), [])


def test_every_command_has_help():
    """In-process (the same app the script runs), so 60 commands cost seconds rather than a
    process start each; the installed script itself is checked once below."""
    from typer.testing import CliRunner

    from gradwalk.platform.interfaces.cli import app

    paths = _command_paths()
    assert ["features", "run"] in paths and ["eval"] in paths and len(paths) > 40
    runner = CliRunner()
    for path in paths:
        out = runner.invoke(app, [*path, "--help"])
        assert out.exit_code == 0, (path, out.output)
        assert "Usage:" in out.output and len(out.output.splitlines()) > 3, path


def test_the_installed_script_runs():
    out = _cli("--help")
    assert out.returncode == 0, out.stderr
    assert "Usage: gradwalk" in out.stdout and "features" in out.stdout


def test_cli_errors_are_one_line_with_exit_code(tmp_path):
    env = {**os.environ, "GRADWALK_NEO4J_URI": "bolt://127.0.0.1:1", "GRADWALK_NEO4J_MAX_RETRY_S": "1"}
    exe = Path(sys.executable).with_name("gradwalk")
    out = subprocess.run([str(exe), "migrate"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 6
    assert out.stderr.startswith("error: Neo4j is not reachable")
    assert "Traceback" not in out.stderr


def test_compose_matches_the_settings():
    import yaml

    from gradwalk.settings import Settings

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"neo4j", "redis", "api", "gpu-worker", "cpu-worker"} <= set(services)
    assert services["neo4j"]["image"] == "neo4j:5.26-community"
    assert services["redis"]["image"] == "redis:7" and "--appendonly" in services["redis"]["command"]
    assert services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert "gpu" in services["gpu-worker"]["command"] and "cpu" in services["cpu-worker"]["command"]
    known = {f"GRADWALK_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "gpu-worker", "cpu-worker"):
        env = services[name]["environment"]
        assert set(env) <= known, set(env) - known
        assert env["GRADWALK_NEO4J_PASSWORD"].startswith("${")  # taken from the environment
    # Workers share the S3 service's bucket, not a volume (hosts that share no disk work the same).
    assert services["s3"]["image"].startswith("andrewgaul/s3proxy:")
    for name in ("gpu-worker", "cpu-worker"):
        assert services[name]["environment"]["GRADWALK_ARTIFACT_URL"].startswith("s3://")
        assert not any("artifacts" in volume for volume in services[name].get("volumes", []))
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"(PASSWORD|AUTH|SECRET_ACCESS_KEY|LINK_SECRET|CREDENTIAL):\s+(?!\S*\$\{)\S", text)


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert len(commands) == 2
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci_lines


def test_the_import_contracts_hold():
    """pyproject's import-linter contracts: rooms point one way (graph <- platform <- workers), the
    pure algorithms and the engine import no driver, queue or web server, and layers hold inside
    each room. Imports inside functions count too."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_rooms_type_check():
    """mypy over platform/, workers/ and graph/ as ``gradwalk.*`` ([tool.mypy] in pyproject): it follows
    an import from one room into another through gradwalk/'s links. About a minute from a cold cache."""
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout


def _modules(package: str, folder: Path) -> list[str]:
    names = []
    for module in folder.rglob("*.py"):
        parts = module.relative_to(folder).with_suffix("").parts
        names.append(".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts))))
    return names


def _covers(entry: str, module: str) -> bool:
    """Whether a layers contract's entry names ``module``: the module itself or a package above it."""
    return module == entry or module.startswith(entry + ".")


def test_every_module_is_in_a_layers_contract():
    """Each module of platform/, workers/ and graph/ sits in a room that a layers contract places,
    so a new module cannot land outside the rules (a room-wide ``forbidden`` contract alone would
    cover everything and say nothing of the module's place)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entries = []
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] != "layers":
            continue
        containers = contract.get("containers", [""])
        for layer in contract["layers"]:
            for name in re.split(r"[|:]", layer):
                entries += [".".join(filter(None, (container, name.strip()))) for container in containers]
    modules = [module for package, folder in (("gradwalk.platform", "platform"), ("gradwalk.workers", "workers"),
                                              ("gradwalk.graph", "graph"))
               for module in _modules(package, ROOT / folder)]
    assert len(modules) > 100
    outside = sorted(module for module in modules if not any(_covers(entry, module) for entry in entries))
    assert outside == [], "add these modules' rooms to a layers contract in pyproject.toml"


def test_every_room_says_what_it_may_import():
    """A room's ``__init__.py`` is one docstring that says what the room may import, and nothing else."""
    rooms = [path for folder in ("platform", "graph") for path in (ROOT / folder).glob("*/__init__.py")]
    assert len(rooms) >= 13
    for init in rooms:
        text = init.read_text()
        assert "May import:" in text, f"{init.relative_to(ROOT)}: say what the room may import"


def test_feature_stores_are_built_from_settings_only():
    """Outside tests a FeatureStore comes from ``FeatureStore.from_settings``: building one from the
    artifact location alone drops the S3 endpoint, keys and cache cap (``features extend`` on S3
    failed with botocore's NoCredentialsError that way)."""
    import ast

    built = []
    for folder in ("platform", "workers", "graph", "gradwalk", "benchmarks", "scripts"):
        for path in (ROOT / folder).glob("*.py" if folder == "gradwalk" else "**/*.py"):  # not the rooms again
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "FeatureStore":
                    built.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert built == []
