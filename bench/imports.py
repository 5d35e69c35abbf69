"""Cold-start cost: how long importing `function_app` takes, next to its libraries alone.

Each figure is the median of fresh processes run with `python -X importtime`, the variants interleaved
so that a noisy moment hurts all of them alike:

- app: `import function_app` (which also reads the settings and builds the clients, as at start-up), from a
  copy of the deployment package: `function_app.py` and `shared/` compiled as azd's prepackage hook compiles
  them (infra/scripts/prepackage-api.sh), since the libraries too come compiled by their install;
- libraries: a process importing exactly the third-party modules that importing `function_app` loads
  (found by listing, in another fresh process, every loaded module that lives in site-packages), so
  their difference is what our own code adds, including any standard-library module only we import;
- deferred: each runtime requirement that importing `function_app` does not load (our code imports it
  where it is used), imported after `function_app` in a process of its own: what its first use costs;
- opentelemetry (when `azure-monitor-opentelemetry` is installed): after `function_app`, importing
  `azure.monitor.opentelemetry` (only what it adds on top of the app) and calling
  `configure_azure_monitor()` (timed in-process; the exporter points at a closed local port).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")
_LIST_LOADED = """
import json, sys, sysconfig
started = set(sys.modules)
import function_app
roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
names = sorted(
    name for name, module in list(sys.modules.items())
    if name not in started and any((getattr(module, "__file__", None) or "").startswith(root) for root in roots)
)
print(json.dumps(names))
"""
_OTEL = """
import time
import function_app
import azure.monitor.opentelemetry
started = time.perf_counter()
azure.monitor.opentelemetry.configure_azure_monitor(
    connection_string="InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/",
    disable_offline_storage=True,
)
print(round((time.perf_counter() - started) * 1000, 1))
"""


def _run(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"import measurement failed:\n{done.stderr[-2000:]}")
    return done


def _self_times(stderr: str) -> dict[str, int]:
    """Module -> microseconds spent in its own body, for every module -X importtime reports."""
    found: dict[str, int] = {}
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match:
            found[match.group(4)] = int(match.group(1))
    return found


def _cumulative(stderr: str, names: set[str]) -> int:
    """Microseconds spent importing `names` at the top level (what the -c program itself imported)."""
    total = 0
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match and match.group(3) == "" and match.group(4) in names:
            total += int(match.group(2))
    return total


def required_packages(requirements: Path) -> list[str]:
    """The import name of each distribution in requirements.txt (`azure-data-tables` -> `azure.data.tables`)."""
    names = []
    for line in requirements.read_text().splitlines():
        requirement = re.split(r"[<>=!~\[; ]", line.split("#", 1)[0].strip(), maxsplit=1)[0]
        if not requirement or requirement.startswith("-"):
            continue
        files = [str(f) for f in importlib.metadata.distribution(requirement).files or []]
        packages = sorted((f for f in files if f.endswith("/__init__.py")), key=lambda f: (f.count("/"), f))
        if packages:
            names.append(packages[0].removesuffix("/__init__.py").replace("/", "."))
    return names


def package_sources(root: Path, into: Path) -> Path:
    """What the prepackage hook compiles and reads (our code, the runtime's version, the hook), laid out as in
    the repository."""
    shutil.copytree(root / "shared", into / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "function_app.py", into)
    (into / "infra" / "modules").mkdir(parents=True)
    shutil.copy(root / "infra" / "modules" / "functionapp.bicep", into / "infra" / "modules")
    shutil.copytree(root / "infra" / "scripts", into / "infra" / "scripts")
    return into


def package(root: Path, into: Path) -> Path:
    """What the function app's deployment holds of our code, compiled by the prepackage hook's own script."""
    package_sources(root, into)
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(into / "infra" / "scripts" / "prepackage-api.sh")],
        env={**os.environ, "PATH": path},
        check=True,
    )
    return into


def measure(env: dict[str, str], runs: int, requirements: Path, package: Path) -> dict[str, Any]:
    listed = _run(_LIST_LOADED, env, package)
    libraries = json.loads(listed.stdout)
    program = "\n".join(f"import {name}" for name in libraries)
    loaded = {_package(name) for name in libraries}
    deferred = [name for name in required_packages(requirements) if name not in loaded and name != "tzdata"]
    deferred_ms: dict[str, list[float]] = {name: [] for name in deferred}
    otel = _installed("azure.monitor.opentelemetry")
    # No network and no statsbeat from the exporter while measuring.
    otel_env = {**env, "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"}
    app_ms: list[float] = []
    library_ms: list[float] = []
    otel_import_ms: list[float] = []
    otel_configure_ms: list[float] = []
    own_self_times: dict[str, list[int]] = {}
    for _ in range(runs):
        app_run = _run("import function_app", env, package)
        app_ms.append(_cumulative(app_run.stderr, {"function_app"}) / 1000)
        library_run = _run(program, env, package)
        library_ms.append(_cumulative(library_run.stderr, set(libraries)) / 1000)
        for name in deferred:
            deferred_run = _run(f"import function_app\nimport {name}", env, package)
            deferred_ms[name].append(_cumulative(deferred_run.stderr, {name}) / 1000)
        library_modules = _self_times(library_run.stderr)
        for name, micros in _self_times(app_run.stderr).items():
            if name not in library_modules:
                own_self_times.setdefault(name, []).append(micros)
        if otel:
            otel_run = _run(_OTEL, otel_env, package)
            otel_import_ms.append(_cumulative(otel_run.stderr, {"azure.monitor.opentelemetry"}) / 1000)
            otel_configure_ms.append(float(otel_run.stdout.strip().splitlines()[-1]))
    app, libs = statistics.median(app_ms), statistics.median(library_ms)
    # What only our code brings in, by its own (self) time: where a module-level import could move.
    ours = sorted(
        ((name, statistics.median(times) / 1000) for name, times in own_self_times.items()), key=lambda item: -item[1]
    )
    result: dict[str, Any] = {
        "runs": runs,
        "appMs": round(app, 1),
        "librariesMs": round(libs, 1),
        "ratio": round(app / libs, 2),
        "ourCodeMs": round(app - libs, 1),
        "libraryModules": len(libraries),
        "libraryPackages": sorted(loaded),
        "deferredMs": {name: round(statistics.median(times), 1) for name, times in deferred_ms.items()},
        "slowestOwnModules": [{"module": name, "selfMs": round(ms, 2)} for name, ms in ours[:12]],
        "opentelemetry": None,
    }
    if otel:
        otel_import, otel_configure = statistics.median(otel_import_ms), statistics.median(otel_configure_ms)
        result["opentelemetry"] = {
            "importMs": round(otel_import, 1),
            "configureMs": round(otel_configure, 1),
            "addedToAppPercent": round(100 * (otel_import + otel_configure) / app, 1),
        }
    return result


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (here azure.monitor) is missing
        return False


def _package(module: str) -> str:
    """The distribution-level name: `azure.data.tables`, `azure.core`, `requests`."""
    parts = module.split(".")
    if parts[0] != "azure" or len(parts) == 1:
        return parts[0]
    return ".".join(parts[:3] if parts[1] in ("data", "storage", "monitor") else parts[:2])
