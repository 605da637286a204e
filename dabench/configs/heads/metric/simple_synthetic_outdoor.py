# V2 metric head on the synthetic outdoor world (range from the card).
_base_ = ["./_base_/simple.py"]

model = dict(min_depth=None, max_depth=None)
data = dict(input_size=[392, 518])
