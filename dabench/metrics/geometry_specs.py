"""Registry entries of the geometry metrics (``dabench.metrics.geometry``), kept free of torch so that
suites can name them without importing the math: the flat ``<level>_<metric>`` names of MoGe's
invariance ladder (task ``geometry``) and Depth Pro's ``si_boundary_f1`` / ``si_boundary_recall``
(task ``boundary``). Plain data: ``dabench.metrics.registry`` registers them (this module imports
nothing of dabench, so the registry can read it at import time without a cycle)."""
from __future__ import annotations

# level -> its metrics, in report order; the flat record name is f"{level}_{metric}"
LEVELS: dict[str, tuple[str, ...]] = {
    "depth_metric": ("rel", "delta1"), "depth_scale_invariant": ("rel", "delta1"),
    "depth_affine_invariant": ("rel", "delta1"), "disparity_affine_invariant": ("rel", "delta1"),
    "points_metric": ("rel", "delta1"), "points_scale_invariant": ("rel", "delta1"),
    "points_affine_invariant": ("rel", "delta1"), "local_points": ("rel", "delta1"),
    "fov_x": ("mae", "deviation"), "boundary": ("radius1_f1", "radius2_f1", "radius3_f1"),
}
LEVEL_METRICS: tuple[str, ...] = tuple(f"{lv}_{m}" for lv, ms in LEVELS.items() for m in ms)


_DISPLAY = {"depth_metric": "Depth metric", "depth_scale_invariant": "Depth SI", "depth_affine_invariant": "Depth AI",
            "disparity_affine_invariant": "Disp AI", "points_metric": "Points metric",
            "points_scale_invariant": "Points SI", "points_affine_invariant": "Points AI",
            "local_points": "Local points", "fov_x": "FoV x", "boundary": "Boundary"}
_METRIC = {"rel": ("Rel", False, ".3f", "", "mean relative error after the level's alignment"),
           "delta1": ("δ1", True, ".3f", "", "fraction within 1.25 (depth ratio) / 0.25 relative distance (points)"),
           "mae": ("MAE", False, ".2f", "deg", "mean absolute error of the horizontal field of view"),
           "deviation": ("dev", False, ".2f", "deg", "signed error of the horizontal field of view (per-image mean)"),
           "radius1_f1": ("F1 r1", True, ".3f", "", "MoGe boundary F1, radius 1 px"),
           "radius2_f1": ("F1 r2", True, ".3f", "", "MoGe boundary F1, radius 2 px"),
           "radius3_f1": ("F1 r3", True, ".3f", "", "MoGe boundary F1, radius 3 px")}


#: (name, display name, higher is better, format, unit, description) of the boundary metrics
BOUNDARY_METRICS = (
    ("si_boundary_f1", "SI-BF1", True, ".3f", "", "Depth Pro scale-invariant boundary F1 against dense depth "
                                                  "(thresholds 1.05-1.25)"),
    ("si_boundary_recall", "SI-BR", True, ".3f", "", "Depth Pro scale-invariant boundary recall against a "
                                                      "foreground mask"),
)


def metric_specs():
    """``(name, display, higher_is_better, fmt, unit, averaging, task, description)`` of every geometry and
    boundary metric, in report order."""
    for lv, ms in LEVELS.items():
        for m in ms:
            disp, hib, fmt, unit, desc = _METRIC[m]
            yield (f"{lv}_{m}", f"{_DISPLAY[lv]} {disp}", hib, fmt, unit, "image", "geometry",
                   f"{desc} (MoGe compute_metrics, level {lv})")
    for name, disp, hib, fmt, unit, desc in BOUNDARY_METRICS:
        yield (name, disp, hib, fmt, unit, "image", "boundary", desc)
