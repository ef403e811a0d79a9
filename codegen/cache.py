"""Content-addressed cache of generated artifacts (kernels, LaTeX, Markdown, manifest).

Layout::

    <cache root>/sympy-<v>-numba-<v>/<stem>-<key[:12]>/
        kernels.py  formulas.tex  formulas.md  manifest.json

``key`` (the build key) is the sha256 of the model's canonical text and of the generator's
own source (every ``.py`` under ``derivations/`` and ``codegen/``, the fixed algorithms that
generated modules import included: numba's cache of a kernel does not see a change in the
functions it calls), so editing either regenerates.  A build directory
is written under a temporary name and renamed into place in one step: a failed or
interrupted build leaves nothing behind, and two processes never see half a build.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from .version import GENERATOR_VERSION

if TYPE_CHECKING:  # sympy and numba are imported only when a build is needed
    from netderive.derivations.ir import FormulaSet

CACHE_ENV = "NETDERIVE_CACHE_DIR"
KERNELS_FILE = "kernels.py"
MANIFEST_FILE = "manifest.json"


def public_mode(path: Path, directory: bool = False) -> None:
    """Give a ``mkstemp``/``mkdtemp`` result (0600/0700) the mode the umask allows."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def cache_root() -> Path:
    """``$NETDERIVE_CACHE_DIR`` if set, else the platform's user cache directory."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("netderive", appauthor=False))


def version_dir() -> Path:
    return cache_root() / f"sympy-{version('sympy')}-numba-{version('numba')}"


@cache
def generator_fingerprint() -> str:
    """sha256 of the generator: its version and the source of ``derivations`` and ``codegen``
    (with their subpackages)."""
    h = hashlib.sha256(GENERATOR_VERSION.encode())
    for package in ("derivations", "codegen"):
        root = Path(__file__).resolve().parent.parent / package
        for path in sorted(root.rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def build_key(spec_text: str) -> str:
    """Cache key of a model: its canonical text plus the generator fingerprint."""
    return hashlib.sha256((generator_fingerprint() + "\n" + spec_text).encode()).hexdigest()


@dataclass(frozen=True)
class Artifacts:
    """The files of one build and its manifest (parameters, quantities, hashes)."""

    directory: Path
    manifest: dict

    @property
    def kernels_path(self) -> Path:
        return self.directory / KERNELS_FILE

    @property
    def latex_path(self) -> Path:
        return self.directory / "formulas.tex"

    @property
    def markdown_path(self) -> Path:
        return self.directory / "formulas.md"


def manifest_of(fs: FormulaSet, fs_hash: str, key: str, kernels_sha: str) -> dict:
    """JSON-ready description of a build: enough to validate input without importing numba."""
    from netderive.derivations.ir import kind_of

    return {
        "name": fs.name,
        "family": fs.family,
        "source": fs.source,
        "content_hash": fs_hash,
        "build_key": key,
        "kernels_sha256": kernels_sha,
        "generator": GENERATOR_VERSION,
        "params": [
            {
                "name": p.name,
                "meaning": p.meaning,
                "domain": str(p.domain),
                "lower": p.domain.lower,
                "upper": p.domain.upper,
                "lower_closed": p.domain.lower_closed,
                "upper_closed": p.domain.upper_closed,
                "integer": p.domain.integer,
                "default": p.default,
            }
            for p in fs.params
        ],
        "items": [
            {
                "name": i.name,
                "kind": kind_of(i).__name__,
                "meaning": i.meaning,
                "ref": i.ref,
                "internal": i.internal,
                "arguments": list(fs.arguments(i.name)),
                # kernels that compute whole curves in one variable: the runtime groups grid
                # points that share every other argument
                **({"curve_variable": i.curve_variable}
                   if getattr(i, "curve_variable", None) else {}),
            }
            for i in fs.items
        ],
        "notes": list(fs.notes),
        "constraints": [{"item": n, "meaning": m} for n, m in fs.constraints],
    }


def _valid(directory: Path) -> dict | None:
    """The manifest of a complete, untampered build directory, else None."""
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        text = (directory / KERNELS_FILE).read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha256(text).hexdigest() != manifest.get("kernels_sha256"):
        return None
    if f'CONTENT_HASH = "{manifest.get("content_hash")}"'.encode() not in text:
        return None
    return manifest


def lookup(stem: str, spec_text: str) -> Artifacts | None:
    """The cached build of this model if it exists and is intact."""
    directory = version_dir() / f"{stem}-{build_key(spec_text)[:12]}"
    manifest = _valid(directory)
    return Artifacts(directory, manifest) if manifest is not None else None


def ensure_built(
    stem: str, spec_text: str, derive: Callable[[], FormulaSet], source: str = ""
) -> tuple[Artifacts, bool]:
    """Return the build of this model, deriving and writing it only if missing or damaged.

    Returns ``(artifacts, rebuilt)``.  ``derive`` is called only when a build is needed.
    """
    found = lookup(stem, spec_text)
    if found is not None:
        return found, False
    from netderive.derivations.ir import content_hash

    from .kernels import kernel_source
    from .latex import to_latex, to_markdown

    key = build_key(spec_text)
    parent = version_dir()
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / f"{stem}-{key[:12]}"
    fs = derive()
    fs_hash = content_hash(fs, extra=(GENERATOR_VERSION,))
    kernels = kernel_source(fs, fs_hash, key, source or fs.source)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.tmp-"))
    public_mode(tmp, directory=True)
    try:
        (tmp / KERNELS_FILE).write_text(kernels)
        (tmp / "formulas.tex").write_text(to_latex(fs))
        (tmp / "formulas.md").write_text(to_markdown(fs))
        manifest = manifest_of(fs, fs_hash, key, hashlib.sha256(kernels.encode()).hexdigest())
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        if final.exists():
            if _valid(final) is not None:  # another process finished first
                shutil.rmtree(tmp)
                return Artifacts(final, _valid(final)), True
            stale = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.stale-"))
            os.replace(final, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another process renamed its build into place after our check
            found = _valid(final)
            if found is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return Artifacts(final, found), True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Artifacts(final, manifest), True


def load_kernels(artifacts: Artifacts) -> types.ModuleType:
    """Import the generated module of a build (numba compiles each kernel on first call)."""
    name = f"netderive_kernels_{artifacts.manifest['build_key'][:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, artifacts.kernels_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    if module.CONTENT_HASH != artifacts.manifest["content_hash"]:
        del sys.modules[name]
        raise RuntimeError(f"{artifacts.kernels_path}: content hash does not match its manifest")
    return module


def compile_formulas(fs: FormulaSet, stem: str | None = None) -> types.ModuleType:
    """Generate (or reuse from the cache) and import the kernels of a FormulaSet."""
    from netderive.derivations.ir import content_hash

    fs_hash = content_hash(fs, extra=(GENERATOR_VERSION,))
    artifacts, _ = ensure_built(stem or fs.name, "formulaset:" + fs_hash, lambda: fs)
    return load_kernels(artifacts)


# -- listing and cleaning the cache root ------------------------------------------------------

#: A temporary folder (a build being written, or an old build being removed) untouched for this
#: long is left over from a process that was killed; younger ones may belong to a running one.
STALE_TEMPORARY_SECONDS = 6 * 3600
#: Folders of the cache root that hold builds: ``sympy-<v>-numba-<v>``.
VERSION_FOLDER = re.compile(r"^sympy-(?P<sympy>[^/]+)-numba-(?P<numba>[^/]+)$")
#: Temporary folders of :func:`ensure_built`: ``.<stem>-<key>.tmp-XXXX``, ``.<...>.stale-XXXX``.
TEMPORARY_FOLDER = re.compile(r"^\.(?P<name>.+)\.(?:tmp|stale)-[^/]*$")
#: A build folder: ``<stem>-<key[:12]>``.
BUILD_FOLDER = re.compile(r"^(?P<stem>.+)-(?P<key>[0-9a-f]{12})$")

#: Status of an entry of the cache (see :func:`cache_entries`).
CURRENT, OTHER_VERSION, TEMPORARY, STALE_TEMPORARY = (
    "current", "other version", "temporary (in use?)", "stale temporary")


@dataclass(frozen=True)
class CacheEntry:
    """One folder under the cache root: a build or a temporary folder."""

    path: Path
    version: str
    model: str
    key: str
    size: int
    status: str

    @property
    def removable(self) -> bool:
        """Removed by ``netderive cache --clean``: other versions, stale temporaries."""
        return self.status in (OTHER_VERSION, STALE_TEMPORARY)


def folder_size(path: Path) -> int:
    """Bytes in the files under ``path`` (symbolic links not followed)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def cache_entries(now: float | None = None) -> list[CacheEntry]:
    """Every build and temporary folder under the cache root, sorted by version and model.

    Only ``sympy-<v>-numba-<v>`` folders are looked into; anything else under the root is
    not netderive's and is neither listed nor removed."""
    root, current = cache_root(), version_dir().name
    now = time.time() if now is None else now
    entries = []
    if not root.is_dir():
        return entries
    for versions in sorted(root.iterdir()):
        if not (versions.is_dir() and not versions.is_symlink()
                and VERSION_FOLDER.match(versions.name)):
            continue
        for folder in sorted(versions.iterdir()):
            if not folder.is_dir() or folder.is_symlink():
                continue
            temporary = TEMPORARY_FOLDER.match(folder.name)
            match = BUILD_FOLDER.match(temporary["name"] if temporary else folder.name)
            model, key = (match["stem"], match["key"]) if match else (folder.name, "")
            if temporary:
                age = now - _newest_mtime(folder)
                status = STALE_TEMPORARY if age > STALE_TEMPORARY_SECONDS else TEMPORARY
            else:
                status = CURRENT if versions.name == current else OTHER_VERSION
            entries.append(CacheEntry(folder, versions.name, model, key, folder_size(folder),
                                      status))
    return entries


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
            except OSError:
                pass
    return newest


def remove_entries(entries: list[CacheEntry]) -> list[CacheEntry]:
    """Remove the given folders (and version folders left empty); returns those removed.

    A temporary folder that is not stale is never removed (a running process writes it)."""
    removed = []
    for entry in entries:
        if entry.status == TEMPORARY:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not entry.path.exists():
            removed.append(entry)
    for versions in {e.path.parent for e in removed}:
        try:
            versions.rmdir()  # only when empty
        except OSError:
            pass
    return removed


__all__ = ["Artifacts", "CacheEntry", "cache_entries", "cache_root", "build_key",
           "compile_formulas", "ensure_built", "load_kernels", "lookup", "remove_entries"]
