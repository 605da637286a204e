"""The one place where dabench makes mmsegmentation importable on ``mmcv-lite``.

mmsegmentation 1.2.2 imports compiled mmcv ops at package import time
(``from mmcv.ops import point_sample`` in ``mmseg/utils/mask_classification.py``, plus
``mmseg/models/utils/point_sample.py``, ``losses/focal_loss.py``, ``decode_heads/san_head.py``).
``mmcv-lite`` ships the ``mmcv/ops`` sources but not the compiled ``mmcv._ext``, so
``import mmcv.ops`` fails and with it ``import mmseg.models``.

``ensure_mmcv_ops()`` fixes that and nothing else:

- with full ``mmcv`` (compiled ops) it does nothing: the real ``mmcv.ops`` is used;
- otherwise it installs a stand-in ``mmcv.ops`` module that provides ``point_sample`` (and the
  other names of ``mmcv/ops/point_sample.py``), loaded from mmcv's own pure-PyTorch source file;
  every other op name resolves to a placeholder that raises ``MmcvOpsUnavailable`` with the install
  command the moment it is called or instantiated. Importing a head that *mentions* a compiled op
  therefore works; running one (CCNet, PSANet, focal loss, Mask2Former's deformable attention)
  fails with a clear message instead of a segfault or an obscure ``_ext`` error.

The default dabench head (UPerNet) uses no compiled op. Mask2Former needs full mmcv and mmdet:
``pip install -e '.[mmcv-full]'`` (see docs/finetune.md, "mmcv-lite, the mmcv.ops shim, and the mmcv-full extra").
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

from dabench.errors import DabenchError

INSTALL_HINT = (
    "install full mmcv with compiled ops (and mmdet for Mask2Former): "
    "pip uninstall -y mmcv-lite && pip install 'setuptools<80' && MMCV_WITH_OPS=1 MAX_JOBS=2 pip install --no-build-isolation 'mmcv==2.1.0' "
    "&& pip install 'mmdet>=3.0,<3.4'  (the contents of the mmcv-full extra; installing '.[mmcv-full]' "
    "instead would bring mmcv-lite back over full mmcv)"
)

# names taken from mmcv's pure-PyTorch file mmcv/ops/point_sample.py
_PURE_OPS = ("point_sample", "bilinear_grid_sample", "rel_roi_point_to_rel_img_point",
             "denormalize", "generate_grid", "rel_roi_point_to_abs_img_point",
             "abs_img_point_to_rel_img_point", "get_shape_from_feature_map")

SHIM_MARKER = "__dabench_mmcv_ops_shim__"


class MmcvOpsUnavailable(DabenchError, ImportError):
    """A compiled mmcv op was needed but only mmcv-lite is installed."""


def _missing_op(name: str):
    def _raise(*args, **kwargs):
        raise MmcvOpsUnavailable(
            f"mmcv.ops.{name} needs mmcv's compiled ops, which mmcv-lite does not have; {INSTALL_HINT}")

    # a class, so ``from mmcv.ops import X`` and ``class Y(X)`` and ``X(...)`` all behave
    return type(name, (), {"__new__": staticmethod(lambda cls, *a, **k: _raise()),
                           "__call__": _raise, "__doc__": f"placeholder for compiled mmcv.ops.{name}",
                           SHIM_MARKER: True})


class _OpsShim(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        op = _missing_op(name)
        setattr(self, name, op)
        return op


def full_mmcv_available() -> bool:
    """True when ``mmcv.ops`` imports for real (full mmcv with ``mmcv._ext``)."""
    mod = sys.modules.get("mmcv.ops")
    if mod is not None:
        return not getattr(mod, SHIM_MARKER, False)
    try:
        import mmcv.ops  # noqa: F401
    except ImportError:
        # a failed import leaves half-initialised submodules behind; drop them
        for key in [k for k in sys.modules if k == "mmcv.ops" or k.startswith("mmcv.ops.")]:
            del sys.modules[key]
        return False
    return True


def ensure_mmcv_ops() -> bool:
    """Make ``import mmcv.ops`` succeed. Returns True when the stand-in was installed
    (mmcv-lite), False when real ops are present or the stand-in was already in place."""
    if full_mmcv_available():
        return False
    if "mmcv.ops" in sys.modules:  # our shim, installed earlier
        return False
    import mmcv

    src = Path(mmcv.__file__).resolve().parent / "ops" / "point_sample.py"
    spec = importlib.util.spec_from_file_location("mmcv.ops.point_sample", src)
    pure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pure)

    shim = _OpsShim("mmcv.ops", doc=__doc__)
    setattr(shim, SHIM_MARKER, True)
    shim.__file__ = __file__
    shim.__path__ = []  # a package, so `import mmcv.ops.point_sample` finds the entry below
    for name in _PURE_OPS:
        if hasattr(pure, name):
            setattr(shim, name, getattr(pure, name))
    sys.modules["mmcv.ops"] = shim
    sys.modules["mmcv.ops.point_sample"] = pure
    mmcv.ops = shim
    return True
