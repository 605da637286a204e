"""``dabench bench``: dabench's fast paths measured against the scripts researchers use today, in one
process, as ratios against baselines timed in the same run (shared CPUs drift too much for absolute
numbers). Each entry of the result holds ``ratio``, the two raw figures it is made of, the goal and
whether it is met:

- ``metric_engine``: ZoeDepth-style per-image numpy metrics seconds / dabench streaming seconds (>= 20; on the
  CPU the native C kernel), ``seconds_over_floor``: dabench seconds / seconds to merely read the same maps
  (<= 2), and ``kernel_parts``: the kernel rebuilt without its log / divisions (where the time goes)
- ``inference``: official per-image ``infer_image`` seconds (explicit attention, as official DINOv2
  on CPU) / dabench ``predict_batch`` seconds (batched, SDPA) (>= 1.5)
- ``inference_da3``: Depth Anything 3 (``da3_vits14``) one image per forward / batched ``predict_batch``
  seconds (>= 1; no official per-image script is a dabench dependency)
- ``student_step``: student step seconds / teacher step seconds at the tiny preset (<= 1.6)
- ``synthetic_data``: synthetic images delivered per second (persistent render cache; the cold
  render rate is reported as ``ratio_cold``) / images trained per second (>= 4)
- ``memory``: peak RSS of an evaluation over 10N samples / over N samples (<= 1.10)
- ``gpu_vitl_bf16``: ViT-L 518² bf16 autocast, inference and training step: achieved TFLOP/s (FLOPs from
  ``torch.utils.flop_counter``) over the GPU's dense bf16 peak (>= 40 % at batch 16; CUDA only)
- ``train_data``: CPU cores one GPU needs for the paper-preset data pipeline: the ViT-L student's
  images/s at 40 % of H100 bf16 peak / the images/s one DataLoader worker delivers (<= 8;
  ``dabench/bench/train_data.py``)
- ``suite``: the evaluation loop on real-layout NYU frames (``dabench/bench/suite.py``):
  ``host_over_decode``, its seconds per sample with a free model / the single-thread decode floor of the
  same files (<= 1.5); ``overlap``, its wall time behind a simulated asynchronous device / max(device,
  host) (<= 1.15); ``values_equal``, the pipelined records against the reference path

    from dabench.bench import run_bench
    result = run_bench(quick=True)
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from typing import Any, Callable

SECTIONS = ("metric_engine", "inference", "inference_da3", "student_step", "synthetic_data", "memory", "gpu_vitl_bf16",
            "train_data", "suite")


@dataclass(frozen=True)
class BenchSizes:
    """Problem sizes of one bench run (``full()``: the issue's sizes; ``quick()``: seconds, for tests)."""

    metric_maps: int = 654
    metric_size: tuple[int, int] = (480, 640)
    metric_batch: int = 6
    metric_compile: bool = True
    infer_images: int = 8
    infer_size: tuple[int, int] = (480, 640)  # NYU frames
    infer_input_size: int = 518
    infer_batch: int = 4  # run_suite's default evaluation batch
    infer_repeats: int = 5  # interleaved pairs: the median resists load spikes on shared CPUs
    infer_da3_model: str = "da3_vits14"
    infer_model: str = "da2_vits14"  # real width (random weights): the forward, not preprocessing, is timed
    train_warmup: int = 8
    train_steps: int = 20
    train_samples: int = 16
    data_images: int = 24
    memory_n: int = 20
    memory_factor: int = 10
    memory_size: tuple[int, int] = (480, 640)
    memory_input_size: int = 98
    gpu_model: str = "da2_vitl14"
    gpu_batch: int = 16
    gpu_size: int = 518
    gpu_iters: int = 20
    gpu_train_iters: int = 10
    suite_frames: int = 96  # NYU test frames, 480x640, real layout
    suite_repeats: int = 3

    @classmethod
    def full(cls) -> "BenchSizes":
        return cls()

    @classmethod
    def quick(cls) -> "BenchSizes":
        return cls(metric_maps=12, metric_size=(48, 64), metric_batch=4, metric_compile=False, infer_images=2,
                   infer_model="da2_test", infer_da3_model="da3_test",
                   infer_size=(48, 64), infer_input_size=42, infer_batch=2, infer_repeats=1, train_warmup=1,
                   train_steps=2, train_samples=4, data_images=2, memory_n=1, memory_size=(48, 64),
                   memory_input_size=28, gpu_batch=2, gpu_iters=2, gpu_train_iters=2, suite_frames=8, suite_repeats=1)


def default_threads() -> int:
    """The cores this process may use (the default torch thread count of ``dabench bench``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _environment(threads: int, threads_source: str) -> dict[str, Any]:
    import torch

    return {"torch_threads": threads, "torch_threads_source": threads_source,
            "threads_note": "torch_threads applies to every torch path timed (dabench's, and the torch baselines of "
                            "inference and training); the numpy metric baseline is single-threaded by nature",
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.cuda.is_available(),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _met(entry: dict) -> dict:
    if "ratio" in entry and "goal" in entry:
        r, g = entry["ratio"], entry["goal"]
        entry["met"] = bool(r >= g) if entry["goal_op"] == ">=" else bool(r <= g)
    return entry


def run_bench(quick: bool = False, sections=None, threads: int | None = None, device: str = "cpu", gpu_compile: bool = False,
              sizes: BenchSizes | None = None, on_section: Callable[[str, dict], None] | None = None) -> dict:
    """Run the benchmarks (all of ``SECTIONS`` by default) and return the result dict.

    ``threads``: torch intra-op threads for every timed path (both sides of each torch ratio; the numpy
    baselines are single-threaded); None: the machine's usable cores. ``on_section(name, entry)`` is called as each section finishes.
    """
    import torch

    from dabench.errors import ConfigError
    from dabench.provenance import provenance

    sections = list(sections or SECTIONS)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown bench section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    threads_source = "--threads" if threads is not None else "default: usable cores (os.sched_getaffinity)"
    if threads is None:
        threads = default_threads()
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    from dabench.bench import gpu

    if str(device).startswith("cuda") and not gpu.cuda_available():
        raise ConfigError(f"--device {device}: no CUDA device is available here; use --device cpu")
    sizes = sizes or (BenchSizes.quick() if quick else BenchSizes.full())
    torch.set_num_threads(threads)
    result: dict[str, Any] = {"schema": "dabench.bench/1", "quick": quick, "environment": _environment(threads, threads_source)}

    def done(name: str, entry: dict) -> None:
        result[name] = _met(entry)
        if on_section is not None:
            on_section(name, result[name])

    # train_data first: its DataLoader workers fork, and a fork taken after the other sections have
    # started thread pools (OpenCV's in the inference baseline, torch.compile's) can inherit a held
    # lock and hang; a full run hung there before this order
    if "train_data" in sections:
        from dabench.bench import train_data

        done("train_data", train_data.run() if not quick else
             train_data.run(images=4, size=(64, 84), crop=56, steps=3))
    if "suite" in sections:  # early too: its loader workers fork
        from dabench.bench import suite

        done("suite", suite.run(frames=sizes.suite_frames, repeats=sizes.suite_repeats, device=device))
    if "metric_engine" in sections:
        from dabench.bench import metric_engine

        done("metric_engine", metric_engine.run(count=sizes.metric_maps, size=sizes.metric_size,
                                                batch=sizes.metric_batch, compile=sizes.metric_compile,
                                                device=device))
    if "inference" in sections:
        from dabench.bench import inference

        done("inference", inference.run(model_name=sizes.infer_model, images=sizes.infer_images,
                                        size=sizes.infer_size, input_size=sizes.infer_input_size,
                                        batch_size=sizes.infer_batch, repeats=sizes.infer_repeats, device=device))
    if "inference_da3" in sections:
        from dabench.bench import inference

        done("inference_da3", inference.run_batching(model_name=sizes.infer_da3_model, images=sizes.infer_images,
                                                     size=sizes.infer_size, batch_size=sizes.infer_batch,
                                                     repeats=sizes.infer_repeats, device=device))
    training = None
    if "student_step" in sections or "synthetic_data" in sections:
        from dabench.bench import training as training_mod

        training = training_mod.run(warmup=sizes.train_warmup, steps=sizes.train_steps,
                                    num_samples=sizes.train_samples, device=device)
        if "student_step" in sections:
            done("student_step", training)
    if "synthetic_data" in sections:
        from dabench.bench import data

        done("synthetic_data", data.run(training, images=sizes.data_images))
    if "memory" in sections:
        from dabench.bench import memory

        done("memory", memory.run(samples=sizes.memory_n, factor=sizes.memory_factor, size=sizes.memory_size,
                                  input_size=sizes.memory_input_size, threads=threads))
    if "gpu_vitl_bf16" in sections:
        gpu_device = device if str(device).startswith("cuda") else "cuda"
        done("gpu_vitl_bf16", gpu.run(batch_size=sizes.gpu_batch, size=sizes.gpu_size, iters=sizes.gpu_iters,
                                      train_iters=sizes.gpu_train_iters, model_name=sizes.gpu_model,
                                      compile=gpu_compile, device=gpu_device))
    if "metric_engine" in sections and str(device) == "cpu":
        # where the metric engine's time goes: last, so that its torch.compile (worker processes) and
        # thread changes cannot touch any timed section
        from dabench.bench import metric_parts

        result["metric_engine"]["kernel_parts"] = metric_parts.run(
            **({"size": sizes.metric_size, "maps": 2, "rounds": 1, "calls": 1} if quick else {}))
    result.update(provenance(None, {"quick": quick, "sections": sections, "threads": threads, "device": device,
                                    "sizes": asdict(sizes)}))
    return result


# what each section's table row shows: (label, goal text, (baseline key, label), (dabench key, label), unit)
ROWS = {
    "metric_engine": ("metric engine", "≥ 20×", ("baseline_seconds", "numpy per-image"),
                      ("dabench_seconds", "dabench"), "s"),
    "inference": ("inference", "≥ 1.5×", ("per_image_seconds", "per-image"), ("batched_seconds", "batched"), "s"),
    "inference_da3": ("inference DA3 (da3_vits14)", "≥ 1×", ("per_image_seconds", "per-image"),
                      ("batched_seconds", "batched"), "s"),
    "student_step": ("student/teacher step", "≤ 1.6×", ("student_step_seconds", "student"),
                     ("teacher_step_seconds", "teacher"), "s"),
    "synthetic_data": ("data gen/train rate", "≥ 4×", ("generated_images_per_second", "delivered (cache)"),
                       ("trained_images_per_second", "trained"), "img/s"),
    "memory": ("peak RSS 10N/N", "≤ 1.10×", ("peak_rss_10n_mib", "10N"), ("peak_rss_n_mib", "N"), "MiB"),
    "train_data": ("train data: cores per GPU", "≤ 8", ("gpu_demand_images_per_second", "ViT-L GPU demand"),
                   ("images_per_second_per_core", "per core"), "img/s"),
    "suite": ("suite loop / decode floor", "≤ 1.5×", ("loop_ms_per_sample", "loop"),
              ("decode_ms_per_sample", "decode"), "ms/sample"),
}


def _check(name: str, e: dict) -> str:
    if name == "metric_engine":
        return (f"{e['maps']} maps; values agree: {e['values_agree']} ({e['max_relative_difference']:.0e}); "
                f"{e['seconds_over_floor']:.2f}× the read floor (goal ≤ 2: "
                f"{'met' if e['seconds_over_floor_met'] else 'NOT met'})")
    if name in ("inference", "inference_da3"):
        return f"{e['images']} images; outputs equal: {e['outputs_equal']} ({e['max_relative_difference']:.0e})"
    if name == "synthetic_data":
        return (f"rendered via persistent cache; cold render {e['cold_images_per_second']:.4g} img/s = "
                f"{e['ratio_cold']:.2f}×; cold amortised by the preset's memory cache: "
                f"{e['amortised_with_preset_cache']['ratio']:.2f}×")
    if name == "student_step":
        pb = e["preset_batches"]
        return (f"{e['images_per_step']} img/step each; vs preset teacher ({pb['teacher_images_per_step']} img): "
                f"{pb['ratio']:.2f}×")
    if name == "memory":
        return f"N={e['n']}, 10N={e['n'] * e['factor']}"
    if name == "suite":
        load = e.get("load_average_at_start") or [float("nan")]
        return (f"{e['frames']} NYU frames, {e['workers']} workers; overlap {e['overlap']:.2f} (goal ≤ 1.15: "
                f"{'met' if e['overlap_met'] else 'NOT met'}); values equal: {e['values_equal']} "
                f"({e['max_relative_difference']:.0e}); load {load[0]:.1f}")
    if name == "train_data":
        return (f"1→2 workers: {e['worker_scaling_1_to_2']:.2f}×; {e['gpu']['flops_per_image'] / 1e12:.2f} TFLOP/img "
                f"at {100 * e['gpu']['utilisation']:.0f}% of {e['gpu']['bf16_dense_peak_tflops']} TFLOP/s")
    return ""


def print_table(result: dict, console=None) -> None:
    """The ratios as a rich table (one row per section present in ``result``)."""
    from rich.console import Console
    from rich.table import Table

    from dabench.console import print_table

    console = console or Console()
    title = "dabench bench" + (" --quick (tiny sizes: ratios not meaningful)" if result.get("quick") else "")
    table = Table(title=title)
    for col in ("benchmark", "ratio", "goal", "met", "raw figures", "check"):
        table.add_column(col, justify="right" if col == "ratio" else "left", overflow="fold")
    for name, (label, goal, (a, la), (b, lb), unit) in ROWS.items():
        e = result.get(name)
        if not e:
            continue
        met = "[green]met[/green]" if e["met"] else "[red]NOT met[/red]"
        table.add_row(label, f"{e['ratio']:.2f}×", goal, met, f"{la} {e[a]:.4g} / {lb} {e[b]:.4g} {unit}",
                      _check(name, e))
    print_table(table, console)
    g = result.get("gpu_vitl_bf16")
    if g:
        if g.get("status") == "measured":
            for key in ("inference", "training_step"):
                e = g[key]
                frac = e["fraction_of_bf16_peak"]
                console.print(f"{g['model']} {g['input_size']}² bf16 {key.replace('_', ' ')} on {g['device']}, "
                              f"batch {g['batch_size']}: {e['images_per_second']:.1f} img/s, "
                              f"{e['achieved_tflops']:.1f} TFLOP/s = "
                              + (f"{100 * frac:.1f}% of dense bf16 peak ({g['bf16_peak_tflops']} TFLOP/s; goal ≥ 40%)"
                                 if frac else "unknown bf16 peak for this GPU"))
        else:
            console.print(f"ViT-L 518² bf16 throughput: {g['status']}")
