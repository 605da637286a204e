_base_ = './paper.py'
preset = 'paper-vits'
model = dict(arch='da2_vits14')
