# ZoeDepth head on dabench's synthetic outdoor world (KITTI-like: normed bins, range from the card).
_base_ = ["./zoe_kitti.py"]

model = dict(min_depth=None, max_depth=None)
data = dict(input_size=[392, 518], train_crop=None)
evaluation = dict(crop=None)
