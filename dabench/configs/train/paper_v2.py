# Depth Anything V2's teacher data: only precise synthetic depth (595K images in the paper) from
# BlendedMVS, HyperSim, IRS, TartanAir and Virtual KITTI 2; then pseudo-labelled real images.
#   dabench train pipeline --preset paper-v2 --data-root /data \
#       --unlabelled 'wds:/data/sa1b/shard-{000000..000999}.tar' --out runs/paper-v2
# V2's teacher is ViT-G (--set model.arch=da2_vitg14); its students (S/B/L) learn from the
# pseudo-labels. HyperSim and vKITTI2 use every frame found under their roots (point --data-root at
# the training scenes); vKITTI2's sky (the far plane) is excluded, not trained at disparity 0.
_base_ = './paper.py'
preset = 'paper-v2'
data = dict(
    labelled=[
        dict(name='blendedmvs'),
        dict(name='hypersim'),
        dict(name='irs'),
        dict(name='tartanair'),
        dict(name='vkitti2'),
    ],
)
