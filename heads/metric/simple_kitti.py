# V2 metric head on KITTI (0.001-80 m), KB-cropped training images, 384x768 input.
_base_ = ["./simple_base.py"]

model = dict(min_depth=1e-3, max_depth=80.0)
data = dict(input_size=[384, 768], train_crop="kb")
