# V2 metric head, outdoor: Virtual KITTI 2, max depth 80 m (V2 repo).
_base_ = ["./_base_/simple.py"]

model = dict(min_depth=1e-3, max_depth=80.0)
