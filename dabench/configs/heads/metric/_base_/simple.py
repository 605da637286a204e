# Depth Anything V2 metric head (V2 repo metric_depth/train.py): the DPT output goes through a
# sigmoid and is multiplied by max_depth; SILog with lambda 0.5; AdamW, encoder LR 5e-6, decoder 10x,
# poly(0.9) decay; only the ViT encoder is taken from the relative checkpoint (the V2 recipe).
_base_ = ["./zoe.py"]

model = dict(head="simple", init_parts=["pretrained"])
data = dict(input_size=[518, 518])
optimizer = dict(lr=5e-6, weight_decay=0.01, lr_mult=dict(encoder=1.0, decoder=10.0, head=10.0))
schedule = dict(type="poly", epochs=40, poly_power=0.9)
loss = dict(type="silog", lambd=0.5, scale=1.0)
train = dict(batch_size=4, grad_clip=None)
