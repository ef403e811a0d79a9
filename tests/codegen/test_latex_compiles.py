"""The generated .tex documents compile with pdflatex (skipped where pdflatex is absent)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import toy_formula_set

from netderive.codegen import to_latex
from netderive.derivations import derive
from netderive.runtime.session import resolve_model

pytestmark = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex")


@pytest.mark.parametrize("model", ["weight_decay", "weight_decay_anisotropic", "ld_sign_dilution",
                                   "ld_relu_binarization", "ld_tanh_dilution", "expectation_tanh",
                                   "expectation_relu", None])
def test_tex_document_compiles(tmp_path, model):
    fs = toy_formula_set() if model is None else derive(resolve_model(model, cross_checks=True))
    (tmp_path / "doc.tex").write_text(to_latex(fs))
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
