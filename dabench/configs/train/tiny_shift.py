# Domain shift at tiny scale: the teacher sees labelled INDOOR rooms only; the
# student's unlabelled images are OUTDOOR scenes it never has labels for. Teacher and students are
# evaluated on held-out indoor and outdoor test scenes: the paper's claim is that pseudo-labelled
# images from a new domain, with strong perturbations, carry the student beyond its teacher there.
# `dabench train ablation --preset tiny-shift --seeds 0,1,2 --out DIR` runs every Table 9 arm per seed.
_base_ = './tiny.py'
preset = 'tiny-shift'
data = dict(
    labelled=[
        dict(name='synthetic-indoor', split='train', kwargs=dict(num_samples=384, size=(84, 112), seed=0)),
    ],
    unlabelled=[
        dict(name='synthetic-outdoor', split='train', kwargs=dict(num_samples=768, size=(84, 112), seed=1)),
    ],
)
