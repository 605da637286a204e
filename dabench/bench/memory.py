"""Memory: peak RSS of an evaluation over N and over 10N NYU-sized samples, each in a fresh child
process (``ru_maxrss`` of that child from ``os.wait4``). Streaming evaluation keeps sums, not
predictions, so the ratio should stay near 1 (goal <= 1.10).

The child streams an in-memory dataset of NYU-sized samples (480×640 RGB, depth in metres,
validity) through ``dabench.eval.loop.evaluate_dataset`` with the tiny ``da2_test`` network at a
small input size (the prediction is resized back to 480×640 as in every evaluation): a run that
kept its predictions would grow by 1.2 MB per sample.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys


class NYUSizedSamples:
    """Deterministic dabench samples (``image``, ``depth``, ``valid``, ``name``) made on the fly."""

    def __init__(self, n: int, size: tuple[int, int] = (480, 640)):
        import numpy as np

        self.n, self.size = int(n), tuple(size)
        h, w = self.size
        self.card = {"name": "bench-nyu-sized"}
        self.skipped_missing = 0
        yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
        self._base = 1.0 + 6.0 * (1.0 - yy) * (0.6 + 0.4 * np.cos(4 * xx))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        import numpy as np

        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng(i)
        depth = (self._base * rng.uniform(0.7, 1.3)).astype(np.float32)
        image = np.clip(255.0 / depth[..., None] * np.array([0.9, 1.0, 1.1]) + rng.normal(0, 8, depth.shape + (3,)),
                        0, 255).astype(np.uint8)
        valid = rng.random(depth.shape) > 0.05
        return {"image": image, "depth": depth, "valid": valid, "name": f"bench-{i:05d}"}


def child_main(argv: list[str]) -> None:
    """Entry point of the child: evaluate N samples and print the result as JSON."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--input-size", type=int, default=98)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from dabench.eval.loop import evaluate_dataset
    from dabench.eval.suites import Protocol
    from dabench.models import create_model

    torch.manual_seed(0)
    model = create_model("da2_test").eval()
    ds = NYUSizedSamples(a.samples, (a.height, a.width))
    proto = Protocol(input_size=a.input_size, alignment="scale_shift_disparity", min_depth=1e-3, max_depth=10.0)
    metrics, counts = evaluate_dataset(model, ds, proto, batch_size=a.batch_size, device="cpu")
    print(json.dumps({"counts": counts, "metrics": metrics, "rss_end_mib": _vm_rss_mib()}))


def _vm_rss_mib() -> float | None:
    """Resident set size now (``VmRSS`` of /proc/self/status), MiB; None where /proc is absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _child(samples: int, size: tuple[int, int], input_size: int, threads: int) -> dict:
    cmd = [sys.executable, "-m", "dabench.bench.memory", "--samples", str(samples), "--height", str(size[0]),
           "--width", str(size[1]), "--input-size", str(input_size), "--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"memory bench child ({' '.join(cmd)}) failed with exit code {proc.returncode}:\n"
                           f"{err[-3000:]}")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mib"] = usage.ru_maxrss / 1024.0  # Linux: KiB
    return res


def run(samples: int = 20, factor: int = 10, size: tuple[int, int] = (480, 640), input_size: int = 98,
        threads: int = 1) -> dict:
    small = _child(samples, size, input_size, threads)
    large = _child(samples * factor, size, input_size, threads)
    used = (small["counts"]["used"], large["counts"]["used"])
    return {"ratio": large["peak_rss_mib"] / small["peak_rss_mib"],
            "direction": f"peak_rss({factor}N) / peak_rss(N)", "goal": 1.10, "goal_op": "<=",
            "peak_rss_n_mib": small["peak_rss_mib"], "peak_rss_10n_mib": large["peak_rss_mib"],
            "n": samples, "factor": factor, "samples_scored": list(used), "size": list(size),
            "input_size": input_size, "rss_at_end_mib": [small.get("rss_end_mib"), large.get("rss_end_mib")],
            "stored_predictions_would_add_mib":
                samples * (factor - 1) * size[0] * size[1] * 4 / 2 ** 20}


if __name__ == "__main__":
    child_main(sys.argv[1:])
