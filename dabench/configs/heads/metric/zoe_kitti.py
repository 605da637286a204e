# ZoeDepth metric-bins head on KITTI (Eigen split) as Depth Anything V1 (Table 4): normed (bounded)
# bin centres, 384x768 input (V1 repo config_zoedepth_kitti.json; 378x770 after rounding to multiples of 14), 0.001-80 m, KB crop then Garg crop.
_base_ = ["./_base_/zoe.py"]

model = dict(head="zoe", bin_centers_type="normed", min_depth=1e-3, max_depth=80.0)
# 384x768 (V1 config img_size) rounded to multiples of 14 as the V1 core's resizer does: 378x770
data = dict(input_size=[378, 770], train_crop="kb")
evaluation = dict(crop="kb+garg")
