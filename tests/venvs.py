"""Fresh virtual environments with envsim installed from a wheel, as a user installs it (offline).

The wheel is built from a copy of this working tree (so a stale ``build/`` never leaks into it),
without build isolation (the setuptools of the test environment builds it, no network). The new
environment has no pip and takes its dependencies (pydantic, gymnasium, Ray...) from the test
environment's site-packages through a ``.pth`` file; envsim itself is importable only from the
wheel: the test environment's editable install is a finder that ``.pth`` paths never start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "envsim-helpdesk"
"""The example plug-in package (a toolkit, a fixture, two scenarios and a persona)."""
ENVSIM_SOURCES = ("envsim", "tools_mock", "scenarios", "pyproject.toml", "README.md")
"""What the envsim wheel is built from."""

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")


def _check(args: list[str], cwd: Path | None = None) -> str:
    """Run ``args``; its stdout, or an AssertionError carrying its output when it fails."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return done.stdout


def build_wheel(tmp: Path, project: Path = REPO, sources: tuple[str, ...] | None = None) -> Path:
    """A wheel of ``project`` (only ``sources`` of it, default all), built from a copy under ``tmp``."""
    copy = tmp / f"src-{project.name}"
    if sources is None:
        shutil.copytree(project, copy, ignore=_IGNORE)
    else:
        copy.mkdir(parents=True)
        for name in sources:
            if (project / name).is_dir():
                shutil.copytree(project / name, copy / name, ignore=_IGNORE)
            else:
                shutil.copy2(project / name, copy / name)
    out = tmp / f"wheels-{project.name}"
    offline = ["--no-deps", "--no-index", "--no-build-isolation"]
    _check([sys.executable, "-m", "pip", "wheel", "-q", *offline, "-w", str(out), str(copy)], cwd=tmp)
    (wheel,) = out.glob("*.whl")
    return wheel


def envsim_wheel(tmp: Path) -> Path:
    """The envsim wheel of this working tree."""
    return build_wheel(tmp, REPO, ENVSIM_SOURCES)


def make_venv(root: Path, *wheels: Path) -> Path:
    """A new virtual environment at ``root`` with ``wheels`` installed (no dependencies resolved)."""
    _check([sys.executable, "-m", "venv", "--without-pip", str(root)])
    python = root / "bin" / "python"
    site = _check([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip()
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(site) / "envsim_test_dependencies.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    _check([*pip, *map(str, wheels)])
    return root


def run_in(
    venv: Path, args: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``venv``'s ``bin/<args[0]>`` in ``cwd`` with ``env`` and no envsim setting inherited from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVSIM_", "PYTHON", "RAY_"))} | (env or {})
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
