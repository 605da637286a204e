"""``dabench bench``: the performance benchmarks of ``dabench.bench`` as one command."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dabench.cli._app import app


@app.command("bench")
def bench(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the full result JSON here (atomic)"),
    quick: bool = typer.Option(False, "--quick", help="tiny sizes (seconds; for tests — ratios are not meaningful)"),
    only: Optional[str] = typer.Option(None, "--only", help="comma-separated sections: metric_engine, inference, "
                                       "student_step, synthetic_data, memory, gpu_vitl_bf16, train_data, suite"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads for every timed torch path "
                                          "(default: the machine's usable cores; the numpy baselines are "
                                          "single-threaded by nature)"),
    device: str = typer.Option("cpu", "--device", help="device of the metric, inference and training paths; "
                               "cuda also runs gpu_vitl_bf16 there (ViT-L/14 518² bf16: inference and a training "
                               "step, counted TFLOP/s over the GPU's dense bf16 peak)"),
    compile_gpu: bool = typer.Option(False, "--compile-gpu", help="torch.compile the ViT-L GPU throughput model"),
    json_stdout: bool = typer.Option(False, "--json", help="also print the result JSON to stdout"),
) -> None:
    """Measure dabench's fast paths against today's scripts, as ratios in one run (a few minutes on CPU).

    Example: dabench bench --out bench.json

    Example: dabench bench --device cuda --only gpu_vitl_bf16 --out gpu.json
    """
    import json
    import os
    import sys

    # Before torch (and its OpenMP runtime) loads: idle OpenMP threads sleep instead of spinning. On
    # shared CPUs a spinning worker waits for a descheduled sibling at every parallel region (a fused
    # metric kernel went from 0.5 to 14 ms/map at 2 threads). Affects both sides of each torch ratio.
    if "torch" not in sys.modules:  # too late otherwise (the runtime reads it once, at load)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rich.console import Console

    from dabench.bench import print_table, run_bench
    from dabench.provenance import atomic_write_json

    console = Console(stderr=True)
    sections = [s.strip() for s in only.split(",") if s.strip()] if only else None

    def progress(name: str, entry: dict) -> None:
        if "ratio" in entry:
            console.print(f"[dim]{name}: ratio {entry['ratio']:.3f} (goal {entry['goal_op']} {entry['goal']})[/dim]")
        else:
            console.print(f"[dim]{name}: {entry.get('status')}[/dim]")

    result = run_bench(quick=quick, sections=sections, threads=threads, device=device, gpu_compile=compile_gpu,
                       on_section=progress)
    print_table(result, console=Console())
    if out is not None:
        atomic_write_json(out, result)
        console.print(f"wrote {out}")
    if json_stdout:
        typer.echo(json.dumps(result, indent=1, default=str))
