"""What the lent machine runs: the packages erasebench uses, the card, cuDNN, which attention
kernel torch picks for each of SD v1.4's attention shapes, and the plugins found (a missing
wheel or an incompatible version shows here, before any measurement)."""

import importlib.metadata as metadata

import onnxruntime
import torch
from torch.nn.attention import SDPBackend

from erasebench.registry import ERASERS, TASKS

PACKAGES = ["torch", "diffusers", "transformers", "huggingface_hub", "open_clip_torch",
            "onnxruntime", "nudenet", "lpips", "torch_fidelity", "pydantic", "numpy",
            "erasebench"]

for name in PACKAGES:
    print(f"{name} {metadata.version(name)}")
card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"CUDA: {card}")
print(f"cuDNN: {torch.backends.cudnn.version()}")

# SD v1.4's attention at 512 px (latents 64x64, 8 heads): (query tokens, key tokens, head
# dim) of its self- and cross-attention at each level. Which kernel scaled_dot_product_attention
# runs for each in fp16 says whether cuDNN's fused attention or FlashAttention-2 does the
# work (torch puts cuDNN's first on Hopper only with a new enough cuDNN).
ATTENTION_SHAPES = [(4096, 4096, 40), (4096, 77, 40), (1024, 1024, 80), (1024, 77, 80),
                    (256, 256, 160), (256, 77, 160), (64, 64, 160), (64, 77, 160)]
device = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.float16 if device == "cuda" else torch.float32
rows = 128 if device == "cuda" else 2  # a guided batch of 64 images
for queries, keys, head_dim in ATTENTION_SHAPES:
    query = torch.randn(rows, 8, queries, head_dim, device=device, dtype=dtype)
    key = torch.randn(rows, 8, keys, head_dim, device=device, dtype=dtype)
    choice = SDPBackend(torch._fused_sdp_choice(query, key, key)).name
    print(f"attention {queries}x{keys}, head dim {head_dim}, {dtype}: {choice}")
order = [SDPBackend(index).name for index in torch._C._get_sdp_priority_order()]
print(f"attention kernels tried in this order: {', '.join(order)}")
print(f"onnxruntime providers: {', '.join(onnxruntime.get_available_providers())}")
print(f"erasers: {', '.join(ERASERS.names())}")
print(f"tasks: {', '.join(TASKS.names())}")
