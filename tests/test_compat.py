import sys

import numpy as np


def test_basicsr_imports_beside_new_torchvision():
    from restore.compat import import_basicsr

    matlab = import_basicsr("utils.matlab_functions")
    assert "torchvision.transforms.functional_tensor" in sys.modules
    img = np.random.default_rng(0).random((16, 12, 3))
    assert matlab.imresize(img, 0.25).shape == (4, 3, 3)
    from basicsr.archs.rrdbnet_arch import RRDBNet  # noqa: F401  (what the SR issue wraps)


def test_missing_basicsr_error_says_how_to_install(monkeypatch):
    import builtins

    import pytest

    from restore import compat

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("basicsr"):
            raise ModuleNotFoundError("No module named 'basicsr'", name="basicsr")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    for key in [k for k in sys.modules if k.startswith("basicsr")]:
        monkeypatch.delitem(sys.modules, key)
    with pytest.raises(ImportError, match="--no-build-isolation basicsr"):
        compat.import_basicsr("metrics")
