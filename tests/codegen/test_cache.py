"""The content-addressed build cache: reuse, invalidation, atomic failure, tamper detection."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import netderive.codegen.cache as cache
from netderive.codegen import CodegenError, ensure_built, load_kernels, lookup
from netderive.derivations.ir import FormulaSet


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture
def counted(small_set_factory):
    """A derive callable that counts its calls."""

    class Derive:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self) -> FormulaSet:
            self.calls += 1
            return small_set_factory()

    return Derive()


@pytest.fixture
def small_set_factory():
    from conftest import small_formula_set

    return small_formula_set


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_cache_root_follows_the_environment(cache_dir: Path) -> None:
    assert cache.cache_root() == cache_dir
    assert cache.version_dir().parent == cache_dir


def test_derives_once_and_reuses(cache_dir: Path, counted) -> None:
    first, rebuilt = ensure_built("small", "spec: reuse", counted)
    assert rebuilt and counted.calls == 1
    assert first.directory.parent == cache.version_dir()
    assert first.directory.name.startswith("small-")
    for path in (first.kernels_path, first.latex_path, first.markdown_path):
        assert path.is_file()
    second, rebuilt = ensure_built("small", "spec: reuse", counted)
    assert not rebuilt and counted.calls == 1
    assert second.directory == first.directory and second.manifest == first.manifest
    assert lookup("small", "spec: reuse").directory == first.directory


def test_changed_spec_gives_a_new_directory(cache_dir: Path, counted) -> None:
    one, _ = ensure_built("small", "spec: version 1", counted)
    two, rebuilt = ensure_built("small", "spec: version 2", counted)
    assert rebuilt and counted.calls == 2
    assert one.directory != two.directory
    assert one.directory.is_dir() and two.directory.is_dir()
    assert lookup("small", "spec: version 3") is None


def test_manifest_describes_the_build(cache_dir: Path, counted) -> None:
    art, _ = ensure_built("small", "spec: manifest", counted)
    manifest = json.loads((art.directory / cache.MANIFEST_FILE).read_text())
    assert manifest == art.manifest
    assert manifest["kernels_sha256"] == hashlib.sha256(art.kernels_path.read_bytes()).hexdigest()
    assert [i["name"] for i in manifest["items"]] == ["double"]
    assert manifest["items"][0]["arguments"] == ["a"]


def test_failing_derive_leaves_nothing_behind(cache_dir: Path) -> None:
    def derive() -> FormulaSet:
        raise ValueError("derivation failed")

    with pytest.raises(ValueError, match="derivation failed"):
        ensure_built("broken", "spec: broken", derive)
    assert entries(cache.version_dir()) == []
    assert lookup("broken", "spec: broken") is None


def test_failing_codegen_leaves_nothing_behind(cache_dir: Path, monkeypatch) -> None:
    import sympy as sp

    from netderive.derivations.ir import POSITIVE, Formula, Parameter

    a = sp.Symbol("a", positive=True)
    bad = FormulaSet(
        "bad",
        "toy",
        "bad.toml",
        (Parameter(a, "scale", POSITIVE, 1.0),),
        (Formula("f", sp.Piecewise((a, a > 1)), "no True branch", "none"),),
    )
    with pytest.raises(CodegenError):
        ensure_built("bad", "spec: bad codegen", lambda: bad)
    assert entries(cache.version_dir()) == []


def test_failure_while_writing_removes_the_temporary_directory(
    cache_dir: Path, counted, monkeypatch
) -> None:
    def fail(fs: FormulaSet) -> str:
        raise OSError("disk full")

    import netderive.codegen.latex as latex

    monkeypatch.setattr(latex, "to_latex", fail)
    monkeypatch.setattr(cache, "to_latex", fail, raising=False)  # if imported at module level
    with pytest.raises(OSError, match="disk full"):
        ensure_built("small", "spec: disk full", counted)
    assert counted.calls == 1
    assert entries(cache.version_dir()) == []  # neither the build nor a .tmp- directory


def test_tampered_kernels_are_detected_and_rebuilt(cache_dir: Path, counted) -> None:
    art, _ = ensure_built("small", "spec: tamper", counted)
    original = art.kernels_path.read_bytes()
    position = original.index(b"return ") + len(b"return ")
    tampered = original[:position] + b"-" + original[position + 1 :]
    assert len(tampered) == len(original) and tampered != original
    art.kernels_path.write_bytes(tampered)
    assert lookup("small", "spec: tamper") is None
    again, rebuilt = ensure_built("small", "spec: tamper", counted)
    assert rebuilt and counted.calls == 2
    assert again.directory == art.directory
    assert again.kernels_path.read_bytes() == original
    assert lookup("small", "spec: tamper") is not None
    assert [p for p in entries(cache.version_dir()) if p.startswith(".")] == []


def test_missing_manifest_is_a_miss(cache_dir: Path, counted) -> None:
    art, _ = ensure_built("small", "spec: no manifest", counted)
    (art.directory / cache.MANIFEST_FILE).unlink()
    assert lookup("small", "spec: no manifest") is None
    _, rebuilt = ensure_built("small", "spec: no manifest", counted)
    assert rebuilt and counted.calls == 2


def test_loading_twice_returns_the_same_module(cache_dir: Path, counted) -> None:
    art, _ = ensure_built("small", "spec: load twice", counted)
    first = load_kernels(art)
    second = load_kernels(lookup("small", "spec: load twice"))
    assert first is second
    assert first.CONTENT_HASH == art.manifest["content_hash"]
    assert Path(first.__file__).resolve() == art.kernels_path.resolve()
    assert first.KERNEL_ARGUMENTS == {"double": ("a",)}
    assert first.double(1.25) == 2.5


def test_compile_formulas_writes_into_the_session_cache(toy_kernels, kernel_cache_dir) -> None:
    assert Path(toy_kernels.__file__).resolve().is_relative_to(kernel_cache_dir.resolve())
