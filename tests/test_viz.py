"""One depth colour convention (`dabench.viz`): Spectral_r on disparity, near = warm, invalid black;
colorbars in metres; the evaluation progress bar's rate and ETA."""
from __future__ import annotations

import matplotlib
import numpy as np

from dabench.viz import add_depth_colorbar, colorize_depth, disparity_view, plt


def _near_far():
    depth = np.full((6, 8), 10.0)
    depth[:, :4] = 1.0  # left half near (1 m), right half far (10 m)
    return depth


def test_near_is_warm_and_metric_equals_disparity_picture():
    depth = _near_far()
    rgb = colorize_depth(depth, None, "depth", robust=False)
    near, far = rgb[0, 0].astype(int), rgb[0, 7].astype(int)
    assert near[0] > near[2] and far[2] > far[0]  # red near, blue far
    # the same scene given as disparity is the same picture; and it is Spectral_r's two ends
    np.testing.assert_array_equal(rgb, colorize_depth(1.0 / depth, None, "disparity", robust=False))
    cm = matplotlib.colormaps["Spectral_r"]
    np.testing.assert_array_equal(near, (np.asarray(cm(1.0)[:3]) * 255 + 0.5).astype(int))
    np.testing.assert_array_equal(far, (np.asarray(cm(0.0)[:3]) * 255 + 0.5).astype(int))


def test_invalid_pixels_are_black_and_ignored_by_the_range():
    depth = _near_far()
    valid = np.ones_like(depth, bool)
    valid[0, 0] = False
    depth[0, 0] = 0.01  # would dominate the range if it were used
    rgb = colorize_depth(depth, valid, "depth", robust=False)
    assert (rgb[0, 0] == 0).all()
    _, ok, (lo, hi) = disparity_view(depth, valid, "depth", robust=False)
    assert not ok[0, 0] and np.isclose(lo, 0.1) and np.isclose(hi, 1.0)


def test_colorbar_ticks_are_depths_in_metres():
    fig, ax = plt().subplots()
    cb = add_depth_colorbar(fig, ax, 1 / 10.0, 1 / 1.0, "depth")
    labels = [float(t.get_text()) for t in cb.ax.get_yticklabels()]
    ticks = cb.get_ticks()
    assert len(labels) >= 3 and "depth (m)" in cb.ax.get_ylabel()
    np.testing.assert_allclose(ticks, [1 / d for d in labels])  # colour position = 1/depth
    assert all(1.0 <= d <= 10.0 for d in labels)
    cb2 = add_depth_colorbar(fig, ax, 0.0, 2.0, "disparity")
    assert "relative disparity" in cb2.ax.get_ylabel()
    plt().close(fig)


def test_progress_rate_and_eta_from_the_average():
    from rich.progress import Task

    from dabench.progress import _columns

    rate, eta = _columns("img")
    task = Task(0, "x", total=10, completed=4, _get_time=lambda: 0.0, visible=True, fields={})
    task.start_time, task.stop_time = 0.0, 8.0  # 4 images in 8 s: 0.5 img/s -> 2 s/img, 6 left -> 12 s
    assert str(rate.render(task)) == "2.00 s/img" and str(eta.render(task)) == "eta 0:00:12"
    task.completed = 0
    assert str(rate.render(task)) == "– img/s" and str(eta.render(task)) == "eta –"
    # a resumed task: the 3 items done before this run do not count towards the rate
    task.completed, task.fields["resumed"] = 7, 3  # 4 new items in 8 s, 3 left -> 6 s
    assert str(rate.render(task)) == "2.00 s/img" and str(eta.render(task)) == "eta 0:00:06"
