"""Finite-N convergence of the large-deviation rate functions: kernels against sampling.

For a large-deviation model (Li & Saad 2020; notes ``lisaad2020.md``) and points ``(L, q)`` the
table compares the generated kernel's ``I_L(q)`` with ``e_N = -(1/N) ln P_N(q_L in bin)`` at
``N = 25, 50, 100, 200`` from the independent references (``reference.py``,
``reference_sampling.py``):

- sign units: the exact finite-N binomial chain (notes 4.3; no sampling error), ``P_N`` of the
  lattice point ``q = 2k/N - 1``;
- ReLU units: the Gaussian-level chain of the normalised overlap (notes 4.4) with exponential
  tilting towards the reference's own optimal path (importance sampling), bin ``q +- 1/N``;
- other bounded activations (e.g. tanh; the build's ``activation_bound`` is finite): the
  Gaussian-level chain of ``(q, Q, Q_hat)`` with tilts of ``X = phi(h) phi(h_hat)``; the
  observable is the kernel's, ``q_L / sqrt(Q_L^typ Q_hat_L^typ)`` (norms held at their typical
  values, computed by the reference's own quadrature), bin ``q +- 1/N``.

A bin of width ``2/N`` (the sign lattice spacing) makes ``e_N = I + ln(N)/(2N) + c/N + ...``
(local limit theorem); ``extrapolated`` removes the log term and Richardson-extrapolates the last
two sizes: ``2 c_(2N) - c_N`` with ``c_N = e_N - ln(N)/(2N)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from netderive.runtime.activation import activation_derivative
from netderive.runtime.session import Build

from . import reference as ref
from . import reference_sampling as tails

#: Chain sizes of the table.
SIZES = (25, 50, 100, 200)


@dataclass(frozen=True)
class ConvergenceRow:
    """One point: the kernel's ``I_L(q)`` and the finite-N sampling estimates."""

    case: str
    depth: int
    q: float
    kernel: float
    sizes: tuple[int, ...]
    rates: tuple[float, ...]  # e_N = -(1/N) ln P_N(bin)
    errors: tuple[float, ...]  # standard errors of e_N (0: exact)
    extrapolated: float
    extrapolated_error: float
    method: str
    seconds: float

    @property
    def gaps(self) -> tuple[float, ...]:
        """``e_N - I_L(q)``."""
        return tuple(r - self.kernel for r in self.rates)


# ----------------------------------------------------------------------------------------------
# the model, seen by the reference


@dataclass(frozen=True)
class ReferenceModel:
    """What the references need of a model: activation kind, ``rho``, variances, input overlap.

    ``rho`` and the variance ratio are the notes' closed forms (section 2): dilution
    ``sqrt(1 - p)`` and ``1 - p``; binarization (scale ``sigma_w``) ``sqrt(2/pi)`` and 1.
    """

    kind: str  # "sign", "relu" or "generic"
    activation: Callable[[np.ndarray], np.ndarray] | str
    perturbation: str
    p: float
    rho: float
    variance_ratio: float
    weight_variance: float
    input_overlap: float
    bound: float | None  # sup |phi| for generic activations (None: unbounded or undecided)


def reference_model(build: Build, values: dict[str, float] | None = None) -> ReferenceModel:
    """The reference's view of ``build`` at parameter ``values`` (default: the defaults).

    The bound of a generic activation is the build's ``activation_bound`` (sup |phi|, decided
    symbolically by the derivation; +inf, i.e. None here, when unbounded or undecided).
    """
    values = build.defaults if values is None else values
    spec = build.spec
    text = str(spec["activation"]).strip()
    perturbation = spec["perturbation"]
    p = float(values.get("p", spec.get("p", 0.0)) or 0.0)
    if perturbation == "dilution":
        rho, ratio = math.sqrt(1.0 - p), 1.0 - p
    else:
        rho, ratio = math.sqrt(2.0 / math.pi), 1.0
    q0 = float(values.get("input_overlap", spec.get("input_overlap", 1.0)))
    sigma2 = float(values.get("weight_variance", spec.get("weight_variance", 1.0)))
    kind = text if text in ("sign", "relu") else _homogeneous_kind(text)
    if kind != "generic":
        return ReferenceModel(kind, kind, perturbation, p, rho, ratio, sigma2, q0, None)
    bound = build.call("activation_bound", values)
    return ReferenceModel("generic", numpy_activation(text), perturbation, p, rho, ratio, sigma2,
                          q0, bound if math.isfinite(bound) else None)


def _homogeneous_kind(text: str) -> str:
    """``"sign"``/``"relu"`` for positive multiples written as expressions, else ``"generic"``."""
    phi = numpy_activation(text)
    x = np.linspace(-5.0, 5.0, 2001)
    y = phi(x)
    for kind, base in (("sign", np.where(x >= 0, 1.0, -1.0)), ("relu", np.maximum(x, 0.0))):
        scale = y[-1] / base[-1]
        if scale > 0 and np.allclose(y[x != 0], scale * base[x != 0], rtol=1e-12, atol=0):
            return kind
    return "generic"


def numpy_activation(text: str) -> Callable[[np.ndarray], np.ndarray]:
    """A vectorised numpy function of the model's activation text (the whitelisted
    evaluator of :mod:`netderive.runtime.activation`; no sympy, no generated code)."""
    return activation_derivative(text, 0)


# ----------------------------------------------------------------------------------------------
# kernel side


#: Points per curve where the rate function is a saddle point solved point by point.
POINTWISE_GRID = 49


def rate_is_curve(build: Build) -> bool:
    """Whether ``rate_function`` is a dynamic programming that computes whole curves."""
    return build.item("rate_function").get("curve_variable") == "q"


def kernel_rate_curves(build: Build, values: dict[str, float], depth: int, *,
                       last_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(grid, rows I_1..I_L)`` of the kernel's ``rate_function``: one DP for all layers, or
    (a saddle point solved per point) :data:`POINTWISE_GRID` points of ``(-1, 1)`` per layer
    (with ``last_only``, layer L only; the other rows NaN)."""
    if rate_is_curve(build):
        return build.curves("rate_function", {**values, "depth": depth})
    grid = np.linspace(-0.96, 0.96, POINTWISE_GRID)
    rows = np.full((depth, grid.size), np.nan)
    for layer in range(depth if last_only else 1, depth + 1):
        rows[layer - 1] = [kernel_rate(build, values, layer, float(q)) for q in grid]
    return grid, rows


def kernel_rate(build: Build, values: dict[str, float], depth: int, q: float) -> float:
    """``I_L(q)`` of the kernel at one point (the whole DP for curve kernels)."""
    if rate_is_curve(build):
        grid, curves = kernel_rate_curves(build, values, depth)
        return rate_at(grid, curves, depth, q)
    return float(build.call("rate_function", {**values, "depth": depth, "q": q}))


def rate_at(grid: np.ndarray, rates: np.ndarray, depth: int, q: float) -> float:
    """``I_L(q)`` read from the curves (linear interpolation between grid points)."""
    return float(np.interp(q, grid, rates[depth - 1]))


# ----------------------------------------------------------------------------------------------
# reference side


@dataclass(frozen=True)
class Proposal:
    """What the sampler of one point ``(L, q)`` needs besides N (computed once per point)."""

    model: ReferenceModel
    depth: int
    q: float
    path: np.ndarray | None = None  # ReLU: the reference's optimal path r_1*..r_L*
    tilts: np.ndarray | None = None  # generic: tilts theta_1..theta_L of X
    norm: float = 1.0  # generic: sqrt(Q_L Q-hat_L) at their typical values


def proposal(model: ReferenceModel, depth: int, q: float) -> Proposal:
    """The tilts of the importance sampler aimed at ``q_L = q`` (none for sign units)."""
    if model.kind == "sign":
        return Proposal(model, depth, q)
    if model.kind == "relu":
        path, _ = tails.relu_optimal_path(model.rho, depth, q, model.input_overlap)
        return Proposal(model, depth, q, path=path)
    if model.bound is None:
        raise ValueError("sampling of the rate needs a bounded activation")
    args = (model.activation, model.rho, model.variance_ratio, model.weight_variance)
    typical = tails.generic_mean_field(*args, depth, model.input_overlap)
    tilts, _ = tails.generic_frozen_norm_tilts(*args, depth, q, model.input_overlap)
    return Proposal(model, depth, q, tilts=tilts,
                    norm=math.sqrt(typical[-1, 1] * typical[-1, 2]))


def sampled_rate(prop: Proposal, n: int, samples: int, rng: np.random.Generator
                 ) -> tuple[float, float, str]:
    """``(e_N, standard error, method)``: ``-(1/N) ln P_N`` of ``q_L`` near ``q``."""
    model, depth, q = prop.model, prop.depth, prop.q
    if model.kind == "sign":
        grid, log_prob = ref.binomial_chain_distribution(model.rho, depth, n, model.input_overlap,
                                                         log_probability=True)
        k = int(round(n * (1.0 + q) / 2.0))
        if abs(grid[k] - q) > 1e-9:
            raise ValueError(f"q = {q} is not a lattice point 2k/N - 1 of N = {n}")
        return -float(log_prob[k]) / n, 0.0, "exact binomial chain"
    lo, hi = q - 1.0 / n, q + 1.0 / n
    if model.kind == "relu":
        r, logw = tails.relu_tilted_chain_sample(model.rho, depth, n, samples, rng, prop.path,
                                                 model.input_overlap)
        log_p, se = tails.weighted_log_probability(r[:, -1], logw, lo, hi)
        return -log_p / n, se / n, "tilted Gaussian chain"
    args = (model.activation, model.rho, model.variance_ratio, model.weight_variance)
    states, logw = tails.generic_chain_sample(*args, depth, n, samples, rng, model.input_overlap,
                                              prop.tilts, bound=model.bound)
    log_p, se = tails.weighted_log_probability(states[:, -1, 0] / prop.norm, logw, lo, hi)
    return -log_p / n, se / n, ("tilted Gaussian (q, Q, Q-hat) chain; observable q_L / "
                                "sqrt(Q_L* Q-hat_L*), typical norms")


def extrapolate(sizes: Sequence[int], rates: Sequence[float], errors: Sequence[float]
                ) -> tuple[float, float]:
    """Richardson value ``2 c_(N2) - c_(N1)`` of the last two sizes (``N2 = 2 N1``), with
    ``c_N = e_N - ln(N)/(2N)``, and its standard error."""
    n1, n2 = sizes[-2], sizes[-1]
    if n2 != 2 * n1:
        raise ValueError("the last two sizes must be N and 2N")
    c1 = rates[-2] - math.log(n1) / (2 * n1)
    c2 = rates[-1] - math.log(n2) / (2 * n2)
    return 2 * c2 - c1, math.hypot(2 * errors[-1], errors[-2])


def convergence_rows(build: Build, points: Sequence[tuple[int, float]], *,
                     sizes: Sequence[int] = SIZES, samples: int = 20_000,
                     rng: np.random.Generator | None = None,
                     values: dict[str, float] | None = None) -> list[ConvergenceRow]:
    """The table's rows for ``points = [(L, q), ...]``.

    ``samples`` is the number of importance samples at the smallest size; it shrinks as
    ``1/N`` (the work per size is constant), with at least 500 per size.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    values = build.defaults if values is None else {**build.defaults, **values}
    model = reference_model(build, values)
    if rate_is_curve(build):
        grid, curves = kernel_rate_curves(build, values, max(depth for depth, _ in points))

        def kernel_value(depth: int, q: float) -> float:
            return rate_at(grid, curves, depth, q)
    else:
        def kernel_value(depth: int, q: float) -> float:
            return kernel_rate(build, values, depth, q)
    rows = []
    for depth, q in points:
        start = time.perf_counter()
        rates, errors, method = [], [], ""
        prop = proposal(model, depth, q)
        for n in sizes:
            count = max(500, int(samples * sizes[0] / n))
            rate, error, method = sampled_rate(prop, n, count, rng)
            rates.append(rate)
            errors.append(error)
        ext, ext_error = extrapolate(sizes, rates, errors)
        if model.kind != "sign":
            method += f", {max(500, samples)}..{count} samples"
        rows.append(ConvergenceRow(build.spec.stem, depth, q, kernel_value(depth, q),
                                   tuple(sizes), tuple(rates), tuple(errors), ext, ext_error,
                                   method, time.perf_counter() - start))
    return rows


def default_points(build: Build) -> list[tuple[int, float]]:
    """Points of the table: for every layer a point below and one above the typical overlap,
    chosen on the sign lattice of N = 25 (``q = -1 + 0.08 k``) so that every N hits them."""
    depth = int(build.defaults["depth"])
    kind = reference_model(build).kind
    if kind == "sign":
        table = {1: (0.2, 0.92), 2: (-0.2, 0.84), 3: (-0.2, 0.04, 0.6, 0.84)}
        return [(layer, q) for layer in range(1, min(depth, 3) + 1) for q in table[layer]]
    if kind == "relu":
        return [(layer, q) for layer in range(1, min(depth, 3) + 1) for q in (0.6, 0.92)]
    return [(layer, q) for layer in range(1, min(depth, 2) + 1) for q in (0.6, 0.76)]


def format_convergence_table(rows: Sequence[ConvergenceRow]) -> str:
    """The table as text: one row per point, ``e_N`` with its standard error."""
    if not rows:
        return ""
    sizes = rows[0].sizes
    head = (f"{'case':22s} {'L':>2s} {'q':>6s} {'I_L(q) kernel':>13s} "
            + " ".join(f"{'N=' + str(n):>17s}" for n in sizes)
            + f" {'extrapolated':>17s}  method")
    lines = ["-(1/N) ln P_N(q_L in bin) vs the kernel's rate function "
             "(extrapolated: 2 c_2N - c_N, c_N = e_N - ln(N)/(2N))", head, "-" * len(head)]
    for r in rows:
        cells = [_with_error(v, e) for v, e in zip(r.rates, r.errors, strict=True)]
        lines.append(f"{r.case:22s} {r.depth:2d} {r.q:6.3f} {r.kernel:13.5f} "
                     + " ".join(f"{c:>17s}" for c in cells)
                     + f" {_with_error(r.extrapolated, r.extrapolated_error):>17s}  {r.method}")
    return "\n".join(lines)


def _with_error(value: float, error: float) -> str:
    if not math.isfinite(value):
        return "inf"
    return f"{value:.5f}" if error == 0 else f"{value:.5f}({min(error, 9.99999):.5f})"
