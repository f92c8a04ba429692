#!/usr/bin/python3
"""Reference values for hlip's optimizer and schedules (tests/unit/train/test_optim.cpp).

AdamW: torch.optim.AdamW (Debian's python3-torch) with open_clip's two parameter groups (weight decay on
tensors with 2+ dimensions, none on gains/biases), three steps with fixed gradients. Schedules: open_clip's
scheduler.py formulas (cosine_lr, const_lr, const_lr_cooldown), rewritten here from open_clip's source.

Writes tests/data/optim/adamw.safetensors and tests/data/optim/schedules.json.
Run: /usr/bin/python3 tests/ref/make_optim_ref.py
"""

import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hlip_vision_ref import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "optim")


def adamw():
    torch.manual_seed(0)
    shapes = {"blocks.0.attn.qkv.weight": (6, 4), "blocks.0.attn.qkv.bias": (6,), "norm.weight": (4,),
              "logit_scale": ()}
    params = {n: torch.randn(s, dtype=torch.float32, requires_grad=True) for n, s in shapes.items()}
    decay = [p for n, p in params.items() if p.ndim >= 2 and "bias" not in n]
    no_decay = [p for n, p in params.items() if not (p.ndim >= 2 and "bias" not in n)]
    opt = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.2}],
                            lr=1e-2, betas=(0.9, 0.98), eps=1e-6)
    out = {}
    for n, p in params.items():
        out[f"init.{n}"] = ("F32", p.detach().numpy().copy())
    for step in range(3):
        for n, p in params.items():
            g = torch.randn(p.shape)
            p.grad = g
            out[f"grad{step}.{n}"] = ("F32", g.numpy().copy())
        opt.step()
        for n, p in params.items():
            out[f"after{step}.{n}"] = ("F32", p.detach().numpy().copy())
    write_safetensors(os.path.join(OUT, "adamw.safetensors"), out,
                      {"lr": "0.01", "beta1": "0.9", "beta2": "0.98", "eps": "1e-06", "weight_decay": "0.2"})


def schedules():
    base, warmup, steps = 0.1, 5, 40

    def warm(step):
        return base * (step + 1) / warmup

    def cosine(step):
        if step < warmup:
            return warm(step)
        e, es = step - warmup, steps - warmup
        return 0.5 * (1 + math.cos(math.pi * e / es)) * base

    def const(step):
        return warm(step) if step < warmup else base

    cooldown, end, power = 10, 0.01, 2.0

    def cooldown_lr(step):
        if step < warmup:
            return warm(step)
        start = steps - cooldown
        if step < start:
            return base
        e, es = step - start, steps - start
        return (1 - e / es) ** power * (base - end) + end

    cases = {"base_lr": base, "warmup": warmup, "steps": steps, "cooldown_steps": cooldown, "lr_cooldown_end": end,
             "cooldown_power": power,
             "cosine": [cosine(s) for s in range(steps)], "const": [const(s) for s in range(steps)],
             "const-cooldown": [cooldown_lr(s) for s in range(steps)]}
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    adamw()
    schedules()
