"""Fine-tuning heads on a Depth Anything encoder: metric depth (metric/) and semantic segmentation (seg/)."""
