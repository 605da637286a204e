"""Data: how fast the synthetic world renders training samples, against how fast a training step
at the ``tiny`` preset consumes them (goal: generation >= 4x consumption, so it never bottlenecks).

Generation is timed as training reads it: ``build_dataset("synthetic-indoor"|"synthetic-outdoor",
split="train", size=<preset size>)`` samples, alternating the two families like the preset's
labelled set, fresh indices (no cache), in this process. Consumption is images per second of the
faster of the teacher and student steps (measured by ``dabench.bench.training``). The preset keeps
rendered samples in memory (``data.cache``), so a whole run renders each image once: the
amortised figure divides the run's training time by its rendering time.
"""
from __future__ import annotations

from dabench.bench.timing import clock


def generation_rate(images: int = 24, size: tuple[int, int] | None = None, seed: int = 0) -> dict:
    """Images per second rendered by the synthetic datasets of the tiny preset (one process)."""
    from dabench.data import build_dataset
    from dabench.train.config import load_config

    cfg = load_config(preset="tiny")
    specs = cfg["data"]["labelled"]
    if size is None:
        size = tuple(specs[0]["kwargs"]["size"])
    sets = [build_dataset(s["name"], split=s.get("split", "train"), num_samples=images + 1, size=size, seed=seed + 7)
            for s in specs]
    for ds in sets:  # imports, first-call set-up
        ds[images]
    t0 = clock()
    for i in range(images):
        sets[i % len(sets)][i]
    dt = clock() - t0
    return {"images": images, "seconds": dt, "images_per_second": images / dt, "size": list(size),
            "datasets": [s["name"] for s in specs]}


def preset_draws() -> dict:
    """Unique images rendered and images drawn by a full tiny-preset teacher + student run."""
    from dabench.train.config import load_config

    cfg = load_config(preset="tiny")
    d, t, s = cfg["data"], cfg["teacher"], cfg["student"]
    unique_l = sum(int(x["kwargs"]["num_samples"]) for x in d["labelled"])
    unique_u = sum(int(x["kwargs"]["num_samples"]) for x in d["unlabelled"])
    draws_teacher = t["steps"] * t["batch_size"]
    draws_student = s["steps"] * s["batch_size"] * (1 + (s["unlabelled_ratio"] if s["use_unlabelled"] else 0))
    return {"unique_images": unique_l + unique_u, "draws": draws_teacher + draws_student + unique_u,
            "teacher_steps": t["steps"], "student_steps": s["steps"]}


def run(training: dict, images: int = 24) -> dict:
    """Generation rate over the training consumption rate (``training``: the training bench's result)."""
    gen = generation_rate(images)
    consume = max(training["teacher_images_per_second"], training["student_images_per_second"])
    draws = preset_draws()
    pb = training["preset_batches"]  # the preset's own batch sizes
    train_s = (draws["teacher_steps"] * pb["teacher_step_seconds"]
               + draws["student_steps"] * pb["student_step_seconds"])
    render_s = draws["unique_images"] / gen["images_per_second"]
    return {"ratio": gen["images_per_second"] / consume,
            "direction": "generated_images_per_second / trained_images_per_second", "goal": 4.0, "goal_op": ">=",
            "generated_images_per_second": gen["images_per_second"], "trained_images_per_second": consume,
            "generation": gen,
            "amortised_with_preset_cache": {
                "ratio": train_s / render_s, "training_seconds": train_s, "rendering_seconds": render_s,
                "note": "tiny preset keeps samples in memory (data.cache=True): each image is rendered once per run",
                **draws}}
