"""Writes the weights-loader fixture: a small GroupNorm + Conv2d + Linear block, saved by torch
in the layouts users have, with an input and PyTorch's outputs.

fixtures/loader_block/            diffusers-style folder: config.json + diffusion_pytorch_model.safetensors (f32)
fixtures/loader_block_fp16/       the same weights as diffusion_pytorch_model.fp16.safetensors
fixtures/loader_block_bf16.safetensors   the same weights in bfloat16, one file
fixtures/loader_block_io.safetensors     input `x` and outputs `y_f32`, `y_fp16`, `y_bf16`
    (each output computed in float32 by PyTorch from the weights as stored, i.e. after rounding)

The Rust test (core/tests/weights_loader.rs) loads each layout and compares with these outputs.
"""

import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.GroupNorm(4, 8, eps=1e-6)
        self.conv = nn.Conv2d(8, 16, 3, padding=1)
        self.proj = nn.Linear(16, 12)
        self.heads = nn.ModuleList([nn.Linear(12, 12), nn.Linear(12, 12, bias=False)])

    def forward(self, x):
        h = F.silu(self.norm(x))
        h = self.conv(h)
        h = h.permute(0, 2, 3, 1)  # NHWC: Linear acts on channels
        h = self.proj(h)
        for head in self.heads:
            h = h + head(h)
        return h.permute(0, 3, 1, 2)


def main():
    torch.manual_seed(0)
    block = Block().eval()
    # GroupNorm's affine params start at 1/0; randomise them so the test sees them.
    with torch.no_grad():
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(1, 8, 6, 5)
    sd = {k: v.contiguous() for k, v in block.state_dict().items()}

    config = {"_class_name": "LoaderBlock", "channels": 8, "groups": 4, "out": 12}
    outputs = {"x": x}
    for name, dtype, folder, fname in [
        ("f32", torch.float32, "loader_block", "diffusion_pytorch_model.safetensors"),
        ("fp16", torch.float16, "loader_block_fp16", "diffusion_pytorch_model.fp16.safetensors"),
        ("bf16", torch.bfloat16, None, "loader_block_bf16.safetensors"),
    ]:
        stored = {k: v.to(dtype) for k, v in sd.items()}
        if folder:
            d = os.path.join(OUT, folder)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(config, f, indent=2)
            save_file(stored, os.path.join(d, fname))
        else:
            save_file(stored, os.path.join(OUT, fname))
        ref = Block().eval()
        ref.load_state_dict({k: v.float() for k, v in stored.items()})
        with torch.no_grad():
            outputs[f"y_{name}"] = ref(x).contiguous()
    save_file(outputs, os.path.join(OUT, "loader_block_io.safetensors"))
    print("wrote loader fixtures to", OUT)


if __name__ == "__main__":
    main()
