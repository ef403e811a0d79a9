"""The large-deviation family at run time (Li and Saad 2020): the independent references
(``reference.py``: finite random networks, the exact binomial chain, the Gaussian-level ReLU
chain; ``reference_sampling.py``: the exact O(N) sampler of full sign networks and tilted
chains), the tables of kernels against them (``report.py``), the check (``check.py``) and the
demo figures (``figures.py``).

May import what :mod:`netderive.runtime.families` allows; the ``reference*.py`` modules only
numpy, scipy, :mod:`netderive.runtime.progress` and :mod:`netderive.runtime.activation`.
"""

from .. import FamilyRuntime
from .check import check
from .figures import FIGURES

RUNTIME = FamilyRuntime("large_deviation", check, FIGURES)
