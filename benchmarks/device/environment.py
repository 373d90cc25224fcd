"""What the lent machine runs: the packages erasebench uses, the card, and the plugins found
(a missing wheel or an incompatible version shows here, before any measurement)."""

import importlib.metadata as metadata

import onnxruntime
import torch

from erasebench.registry import ERASERS, TASKS

PACKAGES = ["torch", "diffusers", "transformers", "huggingface_hub", "open_clip_torch",
            "onnxruntime", "nudenet", "lpips", "torch_fidelity", "pydantic", "numpy",
            "erasebench"]

for name in PACKAGES:
    print(f"{name} {metadata.version(name)}")
card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"CUDA: {card}")
print(f"onnxruntime providers: {', '.join(onnxruntime.get_available_providers())}")
print(f"erasers: {', '.join(ERASERS.names())}")
print(f"tasks: {', '.join(TASKS.names())}")
