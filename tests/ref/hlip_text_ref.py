#!/usr/bin/python3
"""Reference outputs of HLIP's text tower (open_clip HFTextEncoder around a Hugging Face BertModel, CLS pooling,
linear projection), written from the model spec, section 4, with torch only (no transformers in Debian).

For the two tiny configurations of the spec's reference cases it draws random weights (Linear weights
N(0, 1/fan_in), LayerNorm weights 1 ± 0.1, biases N(0, 0.05²), embeddings N(0, 0.25)), token ids with padding
as the spec's cases do, and computes the outputs in float64 from the float32 weights:
  tests/data/text/<case>.safetensors: the weights under open_clip names (text.*) and
  input.input_ids, expected.text.last_hidden_state, expected.text.pooled, expected.text_features.
Run: /usr/bin/python3 tests/ref/hlip_text_ref.py
"""

import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_safetensors_ref import serialize, tensor  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "text")

CASES = {
    "tiny-cls-scanstudy": dict(seed=0, vocab=64, hidden=32, layers=2, heads=2, intermediate=64, positions=24,
                               context=16, embed=24),
    "tiny-dinotxt-slicescanstudy-seqpos": dict(seed=1, vocab=97, hidden=48, layers=2, heads=4, intermediate=96,
                                               positions=32, context=20, embed=32),
}
PAD, CLS, SEP = 0, 2, 3


def weights(cfg, gen):
    h, i = cfg["hidden"], cfg["intermediate"]

    def linear(out_f, in_f, bias=True):
        w = torch.randn(out_f, in_f, generator=gen) / math.sqrt(in_f)
        return (w, torch.randn(out_f, generator=gen) * 0.05) if bias else (w, None)

    def layer_norm(n):
        return 1 + (torch.rand(n, generator=gen) * 0.2 - 0.1), torch.randn(n, generator=gen) * 0.05

    p = "text.transformer."
    w = {}
    w[p + "embeddings.word_embeddings.weight"] = torch.randn(cfg["vocab"], h, generator=gen) * 0.5
    w[p + "embeddings.position_embeddings.weight"] = torch.randn(cfg["positions"], h, generator=gen) * 0.5
    w[p + "embeddings.token_type_embeddings.weight"] = torch.randn(2, h, generator=gen) * 0.5
    w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"] = layer_norm(h)
    for li in range(cfg["layers"]):
        q = f"{p}encoder.layer.{li}."
        for name in ("query", "key", "value"):
            w[q + f"attention.self.{name}.weight"], w[q + f"attention.self.{name}.bias"] = linear(h, h)
        w[q + "attention.output.dense.weight"], w[q + "attention.output.dense.bias"] = linear(h, h)
        w[q + "attention.output.LayerNorm.weight"], w[q + "attention.output.LayerNorm.bias"] = layer_norm(h)
        w[q + "intermediate.dense.weight"], w[q + "intermediate.dense.bias"] = linear(i, h)
        w[q + "output.dense.weight"], w[q + "output.dense.bias"] = linear(h, i)
        w[q + "output.LayerNorm.weight"], w[q + "output.LayerNorm.bias"] = layer_norm(h)
    w["text.proj.weight"], _ = linear(cfg["embed"], h, bias=False)
    return {k: v.float() for k, v in w.items()}


def input_ids(cfg, gen):
    """Row 0 fills the whole context, row 1 half of it, row 2 is [CLS] x [SEP]; the rest is [PAD]."""
    ctx = cfg["context"]
    ids = torch.zeros(3, ctx, dtype=torch.int64)
    for row, length in enumerate((ctx, ctx // 2, 3)):
        ids[row, 0] = CLS
        ids[row, 1:length - 1] = torch.randint(5, cfg["vocab"], (length - 2,), generator=gen)
        ids[row, length - 1] = SEP
    return ids


def layer_norm(x, weight, bias, eps=1e-12):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def bert(w, ids, cfg):
    """Section 4.3, float64: post-norm layers, additive key mask (1 - mask) * finfo.min, exact GELU."""
    w = {k: v.double() for k, v in w.items()}
    p = "text.transformer."
    t, ctx = ids.shape
    h, heads = cfg["hidden"], cfg["heads"]
    hd = h // heads
    x = (w[p + "embeddings.word_embeddings.weight"][ids] + w[p + "embeddings.position_embeddings.weight"][:ctx]
         + w[p + "embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"])
    mask = (ids != PAD).double()
    additive = ((1 - mask) * torch.finfo(torch.float64).min)[:, None, None, :]
    for li in range(cfg["layers"]):
        q = f"{p}encoder.layer.{li}."

        def lin(name, v):
            return v @ w[q + name + ".weight"].T + w[q + name + ".bias"]

        def heads_of(v):
            return v.view(t, ctx, heads, hd).transpose(1, 2)

        qh, kh, vh = (heads_of(lin(f"attention.self.{n}", x)) for n in ("query", "key", "value"))
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(hd) + additive
        context = (torch.softmax(scores, -1) @ vh).transpose(1, 2).reshape(t, ctx, h)
        a = layer_norm(lin("attention.output.dense", context) + x, w[q + "attention.output.LayerNorm.weight"],
                       w[q + "attention.output.LayerNorm.bias"])
        mlp = lin("output.dense", torch.nn.functional.gelu(lin("intermediate.dense", a)))
        x = layer_norm(mlp + a, w[q + "output.LayerNorm.weight"], w[q + "output.LayerNorm.bias"])
    pooled = x[:, 0]
    return x, pooled, pooled @ w["text.proj.weight"].T


def to_entry(t):
    t = t.contiguous()
    if t.dtype == torch.int64:
        return tensor("I64", t.numpy())
    return tensor("F32", t.float().numpy())


def main():
    os.makedirs(OUT, exist_ok=True)
    for case, cfg in CASES.items():
        gen = torch.Generator().manual_seed(cfg["seed"])
        w = weights(cfg, gen)
        ids = input_ids(cfg, gen)
        hidden, pooled, features = bert(w, ids, cfg)
        entries = {k: to_entry(v) for k, v in w.items()}
        entries["input.input_ids"] = to_entry(ids)
        entries["expected.text.last_hidden_state"] = to_entry(hidden)
        entries["expected.text.pooled"] = to_entry(pooled)
        entries["expected.text_features"] = to_entry(features)
        metadata = {"format": "pt", "generator": "tests/ref/hlip_text_ref.py", "case": case,
                    "seed": str(cfg["seed"])}
        metadata.update({k: str(v) for k, v in cfg.items() if k != "seed"})
        path = os.path.join(OUT, case + ".safetensors")
        with open(path, "wb") as f:
            f.write(serialize(entries, metadata))
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
