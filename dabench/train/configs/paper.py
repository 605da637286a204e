# The paper's recipe with ViT-L at 518 (labelled/unlabelled data lists must be supplied:
# write a config with `_base_ = '<dabench>/train/configs/paper.py'` and data.labelled/unlabelled).
_base_ = './_base_/default.py'
preset = 'paper'
model = dict(arch='da2_vitl14')
