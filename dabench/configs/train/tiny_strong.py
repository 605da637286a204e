# Table 9 row 3 at tiny scale: + strong perturbations (colour jitter, blur, CutMix) on unlabelled images.
_base_ = './tiny.py'
preset = 'tiny-strong'
student = dict(use_unlabelled=True, strong_perturb=True, feat_align=False)
