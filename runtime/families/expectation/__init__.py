"""The expectation family at run time (Borovykh 2019): the independent reference
(``reference.py``: jets by backpropagation, the order-1 and order-2 oracles, Monte Carlo of
noisy gradient descent on the network itself, the initial weights from ``[init]``), the
kernels against it (``report.py``: predictions, horizons), the check (``check.py``) and the
demo figures (``figures.py``).

May import what :mod:`netderive.runtime.families` allows; ``reference.py`` only numpy and
:mod:`netderive.runtime.progress`.
"""

from __future__ import annotations

from netderive.derivations.model import ModelSpec

from .. import FamilyRuntime
from . import report
from .check import check
from .figures import FIGURES


def check_models(spec: ModelSpec) -> dict[str, ModelSpec]:
    """The other orders whose horizon the check reports."""
    return {f"order {order}": other for order, other in report.order_specs(spec).items()
            if other is not spec}


RUNTIME = FamilyRuntime("expectation", check, FIGURES, check_models=check_models)
