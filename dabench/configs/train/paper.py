# Depth Anything V1's recipe with ViT-L at 518 on the paper's six labelled sets (1.5M images).
# A user sets only the data root and the unlabelled shards:
#   dabench train pipeline --preset paper --data-root /data \
#       --unlabelled 'wds:/data/sa1b/shard-{000000..000999}.tar' --out runs/paper
# (the readers and on-disk layouts are on the cards: dabench ls datasets; datasets/<name>.yaml).
_base_ = './_base_/default.py'
preset = 'paper'
model = dict(arch='da2_vitl14')
data = dict(
    labelled=[
        dict(name='blendedmvs'),     # up-to-scale depth (PFM)
        dict(name='diml-indoor'),    # metric depth (uint16 mm)
        dict(name='diml-outdoor'),   # metric depth (uint16 mm, stereo)
        dict(name='hrwsi'),          # disparity (PNG + valid mask), sky at disparity 0
        dict(name='irs'),            # stereo disparity (EXR) -> metric depth
        dict(name='megadepth'),      # up-to-scale depth (HDF5)
        dict(name='tartanair'),      # metric depth (.npy), sky marked
    ],
)
