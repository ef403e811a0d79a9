"""The weight-decay family at run time (Ziyin, Li, Meng 2022): the independent reference
(``reference.py``: exact loss, Monte Carlo dropout and multi-start minimisation of the full
deep linear network), the check (``check.py``) and the demo figure (``figures.py``).

May import what :mod:`netderive.runtime.families` allows; ``reference.py`` only numpy, scipy
and :mod:`netderive.runtime.progress`.
"""

from .. import FamilyRuntime, Starts
from .check import check
from .figures import FIGURES

RUNTIME = FamilyRuntime("weight_decay", check, FIGURES, starts=Starts(default=24, quick=8))
