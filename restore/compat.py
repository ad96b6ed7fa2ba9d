"""The one place that papers over third-party breakage.

basicsr 1.4.2 (its latest release) does ``from torchvision.transforms.functional_tensor import rgb_to_grayscale``
in ``basicsr/data/degradations.py``, which ``import basicsr`` runs. torchvision 0.17 renamed that private module to
``torchvision.transforms._functional_tensor``. We register the new module under the old name before basicsr is
imported, instead of editing site-packages. Import basicsr only through :func:`import_basicsr` (or after importing
this module) so the alias is always in place.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

_OLD = "torchvision.transforms.functional_tensor"
_NEW = "torchvision.transforms._functional_tensor"


def install_torchvision_alias() -> None:
    """Make ``torchvision.transforms.functional_tensor`` importable on torchvision >= 0.17 (idempotent)."""
    if _OLD in sys.modules:
        return
    try:
        importlib.import_module(_OLD)
        return  # old torchvision: the real module exists
    except ModuleNotFoundError:
        pass
    sys.modules[_OLD] = importlib.import_module(_NEW)


def import_basicsr(submodule: str = "") -> ModuleType:
    """Import ``basicsr`` (or ``basicsr.<submodule>``) with the torchvision alias installed.

    Raises an ImportError that says how to install basicsr when it is missing.
    """
    install_torchvision_alias()
    name = "basicsr" + (f".{submodule}" if submodule else "")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] == "basicsr":
            raise ImportError(
                "basicsr is not installed. Install it after torch with "
                "`pip install --no-build-isolation basicsr==1.4.2` (scripts/install.sh does this)."
            ) from err
        raise


def check_basicsr() -> None:
    """Import the basicsr pieces restore uses; fails loudly at install time rather than mid-training."""
    import_basicsr("utils.matlab_functions")
    import_basicsr("metrics")
    import_basicsr("archs.rrdbnet_arch")


install_torchvision_alias()
