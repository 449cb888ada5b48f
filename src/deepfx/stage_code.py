"""The source files each pipeline stage runs, so that both engines rerun what a code change touches.

A stage's code is the static import closure (``deepfx.*`` imports only) of its entry modules, plus
the data files it reads (templates). Snakemake lists those files as job inputs; DVC depends on one
digest file per stage and architecture, ``.code/<stage>[-<arch>]``, written by the ``code`` stage
of dvc.yaml (and by Snakemake's hand-over). A change in ``models/fir.py`` thus reruns the jobs of
the models built on it, a change in ``plots.py`` only the plots jobs (and what follows), in both.

The registry ``deepfx.models`` imports architectures by name at run time, so the closure of the
``train`` and ``evaluate`` stages does not hold every architecture: each job adds its own
(``{arch}`` below). The command-line wrapper (``cli.py``) and the package's ``__init__`` are
plumbing, not a stage's code.
"""

from __future__ import annotations

import ast
import hashlib
import os
from functools import cache
from pathlib import Path

__all__ = ["CODE_DIR", "STAGE_ENTRIES", "code_files", "code_key", "write_digests"]

#: Where the ``code`` stage writes its digests, relative to the project root.
CODE_DIR = ".code"
#: The package's sources, relative to the project root.
SOURCE_DIR = Path("src") / "deepfx"
#: Entry modules (dotted), ``{arch}`` (the job's architecture module) or data files (relative to
#: the package) of each stage; a ``_model`` twin runs its stage's code.
STAGE_ENTRIES: dict[str, list[str]] = {
    "generate": ["deepfx.generate"],
    "process": ["deepfx.effects"],
    "train": ["deepfx.train", "{arch}"],
    "evaluate": ["deepfx.evaluate", "{arch}"],
    "plots": ["deepfx.plots"],
    "report": ["deepfx.report", "deepfx.models", "templates/report.html"],
}


def _stage(stage: str) -> str:
    return stage.removesuffix("_model")


def code_key(stage: str, arch: str | None = None) -> str:
    """Name of the stage's digest file: ``train-fir``, ``plots``, ``report``."""
    stage = _stage(stage)
    return f"{stage}-{arch}" if "{arch}" in STAGE_ENTRIES[stage] else stage


def _module_file(root: Path, module: str) -> Path | None:
    """The file of a ``deepfx.*`` module under ``root``, or None if it is not one."""
    parts = module.split(".")
    if parts[0] != "deepfx":
        return None
    base = root / SOURCE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Dotted names ``path`` imports, at any depth (lazy imports in functions count)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@cache
def _closure(root: Path, module: str) -> frozenset[Path]:
    """The files of ``module`` and of every ``deepfx`` module it imports, transitively."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(root, name)
        if name in seen or path is None or path in seen.values():
            continue
        seen[name] = path
        todo.extend(_imports(path, name))
    plumbing = {root / SOURCE_DIR / "__init__.py", root / SOURCE_DIR / "cli.py"}
    return frozenset(seen.values()) - plumbing


@cache
def _arch_modules(root: Path) -> dict[str, str]:
    """The registry's ``arch → module`` (read from the source: no torch import at DAG time)."""
    tree = ast.parse((root / SOURCE_DIR / "models" / "__init__.py").read_text())
    for node in ast.walk(tree):
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "ARCHS":
            return {arch: spec.split(":")[0] for arch, spec in ast.literal_eval(node.value).items()}
    raise LookupError(f"{root / SOURCE_DIR}/models/__init__.py defines no ARCHS")


def code_files(stage: str, arch: str | None = None, root: str | os.PathLike = ".") -> list[str]:
    """The source files ``stage`` (for ``arch``) runs, relative to ``root``, sorted."""
    root = Path(root).resolve()
    files: set[Path] = set()
    for entry in STAGE_ENTRIES[_stage(stage)]:
        if entry == "{arch}":
            files |= _closure(root, _arch_modules(root)[arch])
        elif entry.startswith("deepfx"):
            files |= _closure(root, entry)
        else:
            files.add(root / SOURCE_DIR / entry)
    return sorted(str(f.relative_to(root)) for f in files)


def _digest(root: Path, files: list[str]) -> str:
    sha = hashlib.sha256()
    for name in files:
        sha.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return sha.hexdigest()


def write_digests(root: str | os.PathLike = ".", out: str | os.PathLike = CODE_DIR) -> list[Path]:
    """Write ``out/<code_key>`` (a SHA-256 of the stage's files) for every stage and registered
    architecture; a file whose digest is unchanged is left untouched. Returns the files."""
    root = Path(root).resolve()
    out = root / out
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stage, entries in STAGE_ENTRIES.items():
        for arch in _arch_modules(root) if "{arch}" in entries else [None]:
            path = out / code_key(stage, arch)
            digest = _digest(root, code_files(stage, arch, root)) + "\n"
            if not path.is_file() or path.read_text() != digest:
                path.write_text(digest)
            written.append(path)
    for stale in set(out.iterdir()) - set(written):
        stale.unlink()
    return written
