_base_ = './paper.py'
preset = 'paper-vitb'
model = dict(arch='da2_vitb14')
