"""The depth-metric sums of a batch of maps on the CPU in one compiled C pass (``depth_kernel.c``).

Scoring is bound by arithmetic, not by reading the maps: per pixel one division for ``p / g``, one
for the δ tests' ``g / p`` and one logarithm. torch's compiled kernel (``dabench.metrics.depth_torch``)
spends half its time in the SLEEF ``log`` call and writes the log terms through a second loop; this
kernel inlines a polynomial ``ln`` (≈1e-7 relative, exact double ``ln`` for 0/subnormal/inf ratios),
keeps all eleven sums in registers (counts as mask popcounts) and hands blocks of rows to its own
POSIX helper threads from a shared counter (one C call per batch; no GIL involved).

The C source is compiled once per machine with the system C compiler (``$CC``, else ``cc``/``gcc``/
``clang``; ``-O3 -march=native``) into ``<dabench cache>/kernels/``, keyed by the source, the
compiler, the flags and the CPU. No compiler, a failed build or ``DABENCH_NATIVE_METRICS=0``: callers
fall back to the torch pass (``available()`` says why). Results do not depend on the thread count:
each block of rows has its own sums, added in a fixed order.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from dabench.metrics.registry import BUILTIN_DEPTH_TERMS, cached_until_registry_changes, term_function

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("depth_kernel.c")
# the kernel's output columns (depth_kernel.c); abs_log10 is the sum of |ln r|, scaled by 1/ln 10 after
COLUMNS = ("abs_rel", "sq_rel", "sq_err", "sq_log", "abs_log10", "log_err", "n", "delta1", "delta2", "delta3", "bad")
_NT, _BLOCK_ROWS = len(COLUMNS), 16
THREADED_MIN_PIXELS = 65536  # smaller batches are scored on the calling thread alone
_LN10 = float(np.log(10.0))

_lock = threading.Lock()
_state: dict = {}


def _cpu_id() -> str:
    """What the compiled code depends on: the machine and, under -march=native, its CPU features."""
    ident = [platform.machine(), platform.processor()]
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features", "model name", "CPU part")):
                ident.append(line)
                if len(ident) > 6:
                    break
    except OSError:
        pass
    return "\n".join(ident)


def _compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc) or cc
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


FLAG_SETS = (("-O3", "-march=native"), ("-O3",))  # the first that compiles wins


def _trusted(path: Path) -> bool:
    """A cached library is loaded (= run) only when this user owns it and its folder, and nobody else
    may write either; otherwise it is rebuilt over it."""
    if not hasattr(os, "getuid"):  # pragma: no cover - Windows
        return True
    try:
        for st in (path.stat(), path.parent.stat()):
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def _build(cc: str, src: bytes, out_dir: Path, flag_sets=FLAG_SETS) -> Path:
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"C compiler {cc} does not run: {e}") from None
    errors = []
    for flags in map(list, flag_sets):
        key = hashlib.sha256(b"\0".join([src, version.encode(), " ".join(flags).encode(),
                                         _cpu_id().encode()])).hexdigest()[:20]
        target = out_dir / f"depth_sums-{key}.so"
        if target.is_file() and _trusted(target):
            return target
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".depth_sums-", suffix=".so")
        os.close(fd)
        try:
            with tempfile.TemporaryDirectory() as d:
                c_file = Path(d) / "depth_kernel.c"
                c_file.write_bytes(src)
                proc = subprocess.run([cc, *flags, "-shared", "-fPIC", "-pthread", "-o", tmp, str(c_file), "-lm"],
                                      capture_output=True, text=True, timeout=300)
            if proc.returncode == 0:
                os.chmod(tmp, 0o755)  # whatever the umask: nobody else may write what will be loaded
                os.replace(tmp, target)  # atomic: a concurrent build (another rank) writes the same bytes
                return target
            errors.append(f"{' '.join(flags)}: {proc.stderr.strip()[-400:]}")
        except (OSError, subprocess.SubprocessError) as e:
            errors.append(f"{' '.join(flags)}: {e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(f"building {SOURCE.name} with {cc} failed: " + " | ".join(errors))


def build_kernel(flag_sets=FLAG_SETS, source: bytes | None = None, out_dir: Path | None = None):
    """Compile (or find in the cache) and load the kernel: (C function, "avx512"|"portable").
    Raises RuntimeError when it cannot. ``flag_sets`` lets tests build the portable variant;
    ``source``/``out_dir`` build a modified kernel elsewhere (``dabench.bench.metric_parts``)."""
    if os.environ.get("DABENCH_NATIVE_METRICS", "1").strip().lower() in ("0", "false", "no", "off"):
        raise RuntimeError("disabled by DABENCH_NATIVE_METRICS=0")
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC, or install gcc/clang)")
    from dabench.provenance import cache_dir

    src = SOURCE.read_bytes() if source is None else source
    if out_dir is None:
        out_dir = cache_dir() / "kernels"
        try:
            out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = tempfile.NamedTemporaryFile(dir=out_dir, delete=True)
            probe.close()
            if not _trusted(out_dir):
                raise OSError("cache folder writable by others")
        except OSError:  # read-only or shared cache: build for this process only
            out_dir = Path(tempfile.mkdtemp(prefix="dabench-kernels-"))
    lib = ctypes.CDLL(str(_build(cc, src, out_dir, flag_sets)))
    if lib.dabench_depth_kernel_layout() != _NT * 1000 + _BLOCK_ROWS:
        raise RuntimeError("compiled kernel does not match this dabench version's layout")
    fn = lib.dabench_depth_sums_shared
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    fn.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, i64, i64, ctypes.c_float, ctypes.c_float,
                   ctypes.c_int, ptr, i64, ptr]
    fn.restype = None
    # the threaded entry points travel with the function (POSIX helper threads in depth_kernel.c)
    fn.parallel = lib.dabench_depth_sums_parallel
    fn.parallel.argtypes = [*fn.argtypes, ctypes.c_int, ctypes.c_int]
    fn.parallel.restype = None
    fn.wake = lib.dabench_depth_wake
    fn.wake.argtypes, fn.wake.restype = [ctypes.c_int], ctypes.c_int
    # one aligned map at a time, float64 (dabench.eval.fastscore)
    fn.align = lib.dabench_align_sums
    fn.align.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, i64, ptr, i64, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                         ptr]
    fn.align.restype = None
    fn.score = lib.dabench_score_map
    fn.score.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, i64, ptr, ptr]
    fn.score.restype = None
    return fn, ("avx512" if lib.dabench_depth_kernel_isa() == 512 else "portable")


def _kernel():
    fn = _state.get("fn")
    if fn is not None:
        return fn
    with _lock:
        if "fn" not in _state and "error" not in _state:
            try:
                _state["fn"], _state["isa"] = build_kernel()
            except (RuntimeError, OSError) as e:
                _state["error"] = str(e)
                log.info("native depth-metric kernel unavailable (%s); using the torch pass", e)
        return _state.get("fn")


def available() -> tuple[bool, str]:
    """(True, "avx512"|"portable") when the native kernel is built and loaded, else (False, why)."""
    fn = _kernel()
    return (True, _state["isa"]) if fn is not None else (False, _state["error"])


def supports(terms) -> bool:
    """True when every term of the sum layout ``terms`` (after ``"n"``) is a built-in term the kernel computes."""
    return _supports(tuple(terms))


@cached_until_registry_changes
def _supports(terms: tuple) -> bool:
    try:
        return all(t == "n" or BUILTIN_DEPTH_TERMS.get(t) is term_function(t) for t in terms)
    except KeyError:
        return False


def wake_helpers(threads: int | None = None) -> bool:
    """Wake the kernel's ``threads - 1`` helper threads (default: torch's thread count) for a pass that
    is about to start: waking an idle core takes longer than ``depth_sums_batch``'s own checks.
    True when they were woken (pass ``woken=True`` on)."""
    import torch

    n = int(threads or torch.get_num_threads()) - 1
    fn = _kernel() if n >= 1 else None
    return bool(fn is not None and fn.wake(n) > 0)


def depth_sums_native(pred, gt, valid, *, min_depth: float, max_depth: float, clamp_pred: bool, terms,
                      threads: int | None = None, kernel=None, woken: bool = False) -> np.ndarray:
    """B×(len(terms)+1) float64 sums in the layout ``terms`` plus the bad-prediction count last.

    ``pred``/``gt``: CPU float tensors B×H×W (crop views are read in place when float32 with a
    contiguous last dimension); ``valid``: None, B×H×W or H×W bool. ``threads``: default
    ``torch.get_num_threads()``; ``kernel``: a C function from ``build_kernel`` (default: this
    process's); ``woken``: ``wake_helpers`` was just called. Raises RuntimeError when the kernel is
    unavailable.
    """
    import torch

    fn = kernel or _kernel()
    if fn is None:
        raise RuntimeError(f"native depth-metric kernel unavailable: {_state.get('error')}")

    def plain(x):
        x = x.float()
        return x if x.stride(-1) == 1 or x.shape[-1] == 1 else x.contiguous()

    p, g = plain(pred), plain(gt)
    b, h, w = p.shape
    if valid is None:
        v, vsb, vsh = None, 0, 0
    else:
        v = valid if valid.dtype == torch.bool else valid != 0
        if v.stride(-1) != 1 and v.shape[-1] != 1:
            v = v.contiguous()
        v = v.view(torch.uint8)
        vsb, vsh = (v.stride(0), v.stride(1)) if v.dim() == 3 else (0, v.stride(0))
    nby = -(-h // _BLOCK_ROWS)
    blocks = b * nby
    out = np.zeros((blocks, _NT), dtype=np.float64)
    args = (p.data_ptr(), g.data_ptr(), v.data_ptr() if v is not None else None, h, w,
            p.stride(0), p.stride(1), g.stride(0), g.stride(1), vsb, vsh,
            float(min_depth), float(max_depth), int(bool(clamp_pred)))
    base = out.ctypes.data
    counter = np.zeros(1, dtype=np.int64)  # the next block to take, shared by the threads
    n = max(1, min(int(threads or torch.get_num_threads()), blocks))
    if n > 1 and h * w * b >= THREADED_MIN_PIXELS:  # this thread and n - 1 helper threads
        fn.parallel(*args, counter.ctypes.data, blocks, base, n, int(bool(woken) and kernel is None))
    else:
        fn(*args, counter.ctypes.data, blocks, base)
    per_map = out.reshape(b, nby, _NT).sum(1)  # fixed order: the same sums for any thread count
    index, scale = _layout(tuple(terms))
    return per_map[:, index] * scale


def _rows(a: np.ndarray, dtype, what: str) -> np.ndarray:
    """``a`` as a 2-D array of ``dtype`` whose rows are contiguous (a crop view is kept)."""
    a = np.asarray(a)
    if a.dtype != dtype:
        a = a.astype(dtype)
    if a.ndim != 2:
        raise ValueError(f"{what} must be H×W, got shape {a.shape}")
    if a.strides[1] != a.itemsize:
        a = np.ascontiguousarray(a)
    return a


def _map_args(pred, gt, valid):
    p = _rows(pred, np.float32, "prediction")
    g = _rows(gt, np.float32, "ground truth")
    v = _rows(valid, np.bool_, "valid mask").view(np.uint8)
    if not (p.shape == g.shape == v.shape):
        raise ValueError(f"shapes differ: pred {p.shape}, gt {g.shape}, valid {v.shape}")
    h, w = p.shape
    return (p, g, v), (p.ctypes.data, g.ctypes.data, v.ctypes.data, h, w, p.strides[0] // 4, g.strides[0] // 4,
                       v.strides[0])


ALIGN_SUMS = ("n", "sum_dp", "sum_dg", "sum_dp2", "sum_dpdg", "p0", "g0", "bad_gt", "bad_pred")


def align_sums_native(pred, gt, valid, *, recip_in: bool, recip_gt: bool, shift: bool,
                      cols: np.ndarray | None = None) -> np.ndarray:
    """The float64 sums a least-squares alignment is fitted from (layout ``ALIGN_SUMS``; see
    ``dabench_align_sums`` in ``depth_kernel.c``) of one H×W map: float32 ``pred``/``gt``, bool ``valid``;
    ``cols``: fit on these columns only (Marigold's subsample). One C call, GIL released."""
    fn = _kernel()
    if fn is None:
        raise RuntimeError(f"native depth-metric kernel unavailable: {_state.get('error')}")
    keep, args = _map_args(pred, gt, valid)
    c = None if cols is None else np.ascontiguousarray(cols, dtype=np.int64)
    out = np.zeros(len(ALIGN_SUMS), dtype=np.float64)
    fn.align(*args, None if c is None else c.ctypes.data, 0 if c is None else len(c), int(bool(recip_in)),
             int(bool(recip_gt)), int(bool(shift)), out.ctypes.data)
    del keep
    return out


def score_map_native(pred, gt, valid, cfg: np.ndarray, terms) -> tuple[np.ndarray, int, int]:
    """``(sums in the layout terms, bad predictions, bad ground truth)`` of one H×W map scored after the
    alignment ``cfg`` = (s, t, lo1, hi1, lo2, recip_in, recip_out, recip_gt) (``dabench_score_map``)."""
    fn = _kernel()
    if fn is None:
        raise RuntimeError(f"native depth-metric kernel unavailable: {_state.get('error')}")
    keep, args = _map_args(pred, gt, valid)
    c = np.ascontiguousarray(cfg, dtype=np.float64)
    out = np.zeros(_NT + 1, dtype=np.float64)
    fn.score(*args, c.ctypes.data, out.ctypes.data)
    del keep
    index, scale = _layout(tuple(terms))
    return out[index[:-1]] * scale[:-1], int(out[_NT - 1]), int(out[_NT])


@functools.lru_cache(maxsize=256)
def _layout(terms: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Kernel columns and scale factors giving the layout ``terms`` + the bad count."""
    names = (*terms, "bad")
    return (np.array([COLUMNS.index(t) for t in names]),
            np.array([1.0 / _LN10 if t == "abs_log10" else 1.0 for t in names]))


__all__ = ["available", "supports", "depth_sums_native", "build_kernel", "wake_helpers", "COLUMNS", "FLAG_SETS",
           "align_sums_native", "score_map_native", "ALIGN_SUMS"]
