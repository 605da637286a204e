# Table 9 row 2 at tiny scale: + L_u on pseudo-labelled images, no strong perturbation.
_base_ = './tiny.py'
preset = 'tiny-lu'
student = dict(use_unlabelled=True, strong_perturb=False, feat_align=False)
