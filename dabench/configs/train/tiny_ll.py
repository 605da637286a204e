# Table 9 row 1 at tiny scale: the student on labelled images only (L_l).
_base_ = './tiny.py'
preset = 'tiny-ll'
student = dict(use_unlabelled=False, strong_perturb=False, feat_align=False)
