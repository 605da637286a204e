# V2 metric head, indoor: HyperSim, max depth 20 m (V2 repo).
_base_ = ["./_base_/simple.py"]

model = dict(min_depth=1e-3, max_depth=20.0)
