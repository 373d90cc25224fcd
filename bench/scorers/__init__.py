"""Scorers: the pretrained models that read generated images (ResNet-50, NudeNet, CLIP,
LPIPS, FID). Each loads its real weights lazily, runs batched on the GPU when there is
one, reports its version and weight hash, and says exactly where to put a missing file.
"""
