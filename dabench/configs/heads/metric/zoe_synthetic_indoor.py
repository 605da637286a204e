# ZoeDepth head on dabench's synthetic indoor world (NYU-like: softplus bins, range from the card).
_base_ = ["./zoe_nyu.py"]

model = dict(min_depth=None, max_depth=None)
