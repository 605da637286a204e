# V2 metric head on KITTI (0.001-80 m), KB-cropped training images, 384x768 input (378x770 in multiples of 14).
_base_ = ["./_base_/simple.py"]

model = dict(min_depth=1e-3, max_depth=80.0)
# 384x768 (V1 config img_size) rounded to multiples of 14 as the V1 core's resizer does: 378x770
data = dict(input_size=[378, 770], train_crop="kb")
evaluation = dict(crop="kb+garg")
