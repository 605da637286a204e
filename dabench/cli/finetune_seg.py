"""`dabench finetune seg` (semantic segmentation through mmsegmentation)."""
from dabench.cli.finetune import finetune_app  # noqa: F401
