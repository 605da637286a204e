# V2 metric head on NYUv2 (0.001-10 m), NYU input size of the V1 recipe.
_base_ = ["./_base_/simple.py"]

model = dict(min_depth=1e-3, max_depth=10.0)
data = dict(input_size=[392, 518])
