# ZoeDepth metric-bins head on NYUv2 as Depth Anything V1 (Table 3): softplus bin centres,
# 392x518 input, 0.001-10 m, Eigen crop at evaluation.
_base_ = ["./_base_/zoe.py"]

model = dict(head="zoe", bin_centers_type="softplus", min_depth=1e-3, max_depth=10.0)
data = dict(input_size=[392, 518])
