"""Registry entries of the geometry metrics (``dabench.metrics.geometry``), kept free of torch so that
suites can name them without importing the math: the flat ``<level>_<metric>`` names of MoGe's
invariance ladder (task ``geometry``) and Depth Pro's ``si_boundary_f1`` / ``si_boundary_recall``
(task ``boundary``). Imported by ``dabench.metrics.registry``."""
from __future__ import annotations

from dabench.metrics.registry import METRICS, MetricSpec, register_metric

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


def _register() -> None:
    for lv, ms in LEVELS.items():
        for m in ms:
            name = f"{lv}_{m}"
            if name in METRICS:
                continue
            disp, hib, fmt, unit, desc = _METRIC[m]
            register_metric(MetricSpec(name, f"{_DISPLAY[lv]} {disp}", hib, fmt, unit, "image", "geometry",
                                       f"{desc} (MoGe compute_metrics, level {lv})"))
    if "si_boundary_f1" not in METRICS:
        register_metric(MetricSpec("si_boundary_f1", "SI-BF1", True, ".3f", "", "image", "boundary",
                                   "Depth Pro scale-invariant boundary F1 against dense depth (thresholds 1.05-1.25)"))
    if "si_boundary_recall" not in METRICS:
        register_metric(MetricSpec("si_boundary_recall", "SI-BR", True, ".3f", "", "image", "boundary",
                                   "Depth Pro scale-invariant boundary recall against a foreground mask"))


_register()
