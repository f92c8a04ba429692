#!/usr/bin/python3
"""Python baseline of one HLIP training step, for bench/bench_train.sh: the same model as an hlip model config
(configs/models/*.json: the hlip vision block and the BERT text tower), in PyTorch (Debian's python3-torch),
timed step by step: forward of the vision tower on [B, N, 1, D, H, W] and of the text tower on the B sentences
and B reports (context length of the config), HLIP's loss (dual: 0.5 sentence CLIP on row 0 + 0.5 report CLIP
on row 1), backward, gradient clipping at 1.0 and an AdamW step.

The vision forward is tests/ref/hlip_vision_ref.py's (the reference the C++ tower is tested against), run in
float32; the BERT forward is written here with torch.nn.functional (post-norm layers, additive key mask, as
Hugging Face's BertModel). Inputs are random (no data loading): the time is the model step alone. No dropout and
no drop path (hlip applies both, so it does slightly more work).

Usage: /usr/bin/python3 bench/baseline_train.py --config configs/models/hlip-tiny.json --batch 32 --scans 4 \
           --steps 20 --threads 2 [--warmup 3] [--json OUT]
Prints one JSON line: median and mean step seconds over the timed steps, studies/s, parameters.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import hlip_vision_ref as V  # noqa: E402


def vision_cfg(config):
    h = config["vision_cfg"]["hlip"]
    depth = h["depth"]
    levels = V.levels_of(depth, h.get("slice_attn_indexes", []), h.get("scan_attn_indexes", []),
                         h.get("study_attn_indexes", []))
    reg = h.get("reg_tokens", 0)
    pool = ("dual" if reg else "dinotxt") if h.get("global_pool_dinotxt", False) else "cls"
    spatial = "sincos3d" if h.get("spatial_posemb_init") == "sincos3d" else "sincos1d+2d"
    return dict(seed=0, C=h["width"], depth=depth, heads=h["num_heads"], img=tuple(h["img_size"]),
                patch=tuple(h["patch_size"]), levels=levels, reg=reg, pool=pool, M=h.get("max_num_scans", 0),
                spatial=spatial, E=config["embed_dim"])


def text_weights(hf, embed_dim, generator):
    h, inter = hf["hidden_size"], hf["intermediate_size"]
    std = hf.get("initializer_range", 0.02)

    def normal(*shape):
        return torch.randn(*shape, generator=generator) * std

    w = {"word": normal(hf["vocab_size"], h), "position": normal(hf["max_position_embeddings"], h),
         "type": normal(hf["type_vocab_size"], h), "ln.w": torch.ones(h), "ln.b": torch.zeros(h)}
    for i in range(hf["num_hidden_layers"]):
        for name, shape in (("q", (h, h)), ("k", (h, h)), ("v", (h, h)), ("o", (h, h)), ("fc1", (inter, h)),
                            ("fc2", (h, inter))):
            w[f"{i}.{name}.w"], w[f"{i}.{name}.b"] = normal(*shape), torch.zeros(shape[0])
        for name in ("ln1", "ln2"):
            w[f"{i}.{name}.w"], w[f"{i}.{name}.b"] = torch.ones(h), torch.zeros(h)
    w["proj"] = normal(embed_dim, h)
    return w


def bert(w, ids, hf, mean_pool):
    n, ctx = ids.shape
    h, heads = hf["hidden_size"], hf["num_attention_heads"]
    hd = h // heads
    eps = hf.get("layer_norm_eps", 1e-12)
    x = w["word"][ids] + w["position"][:ctx] + w["type"][0]
    x = F.layer_norm(x, (h,), w["ln.w"], w["ln.b"], eps)
    mask = (ids != 0).float()
    additive = ((1.0 - mask) * torch.finfo(torch.float32).min)[:, None, None, :]
    for i in range(hf["num_hidden_layers"]):
        def split(t):
            return t.view(n, ctx, heads, hd).transpose(1, 2)

        q, k, v = (split(F.linear(x, w[f"{i}.{name}.w"], w[f"{i}.{name}.b"])) for name in ("q", "k", "v"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + additive
        context = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(n, ctx, h)
        x = F.layer_norm(F.linear(context, w[f"{i}.o.w"], w[f"{i}.o.b"]) + x, (h,), w[f"{i}.ln1.w"],
                         w[f"{i}.ln1.b"], eps)
        mlp = F.linear(F.gelu(F.linear(x, w[f"{i}.fc1.w"], w[f"{i}.fc1.b"])), w[f"{i}.fc2.w"], w[f"{i}.fc2.b"])
        x = F.layer_norm(mlp + x, (h,), w[f"{i}.ln2.w"], w[f"{i}.ln2.b"], eps)
    if mean_pool:
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    else:
        pooled = x[:, 0]
    return F.normalize(pooled @ w["proj"].T, dim=-1)


def clip_loss(image, text, scale):
    logits = scale * image @ text.T
    labels = torch.arange(image.shape[0])
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--scans", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = json.load(open(args.config))
    cfg = vision_cfg(config)
    hf = config["text_cfg"]["hf_config"]
    ctx = config["text_cfg"].get("context_length", 77)
    mean_pool = config["text_cfg"].get("hf_pooler_type", "") == "mean_pooler"

    sd, generator = V.random_weights(cfg)
    frozen = ("spatial_posemb", "sequential_posemb")
    vision = {k: v.float().requires_grad_(not k.endswith(frozen)) for k, v in sd.items()}
    text = {k: v.requires_grad_() for k, v in text_weights(hf, config["embed_dim"], generator).items()}
    logit_scale = torch.tensor(config.get("init_logit_scale", math.log(1 / 0.07)), requires_grad=True)
    dual = cfg["pool"] == "dual"
    logit_bias = torch.tensor(config.get("init_logit_bias", 0.0), requires_grad=True)
    params = [p for p in vision.values() if p.requires_grad] + list(text.values()) + [logit_scale]
    if dual:
        params.append(logit_bias)
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)

    B, N = args.batch, args.scans
    D, H, W = cfg["img"]
    times = []
    for step in range(args.warmup + args.steps):
        image = torch.randn(B, N, 1, D, H, W)
        lengths = torch.randint(8, ctx + 1, (2 * B,))
        ids = torch.randint(5, hf["vocab_size"], (2 * B, ctx))
        ids[torch.arange(ctx)[None] >= lengths[:, None]] = 0
        begin = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        features = F.normalize(V.vision_forward(cfg, vision, image)["image_features"], dim=-1)  # [B, P, E]
        texts = bert(text, ids, hf, mean_pool)
        loss = clip_loss(features[:, 0], texts[:B], logit_scale.exp())
        if dual:
            loss = 0.5 * loss + 0.5 * clip_loss(features[:, 1], texts[B:], logit_bias.exp())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        with torch.no_grad():
            logit_scale.clamp_(0, math.log(100))
        if step >= args.warmup:
            times.append(time.perf_counter() - begin)
    result = {"config": os.path.basename(args.config), "batch": B, "scans": N, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "steps": len(times), "median_step_s": statistics.median(times),
              "mean_step_s": statistics.mean(times), "studies_per_s": B / statistics.median(times),
              "parameters": sum(p.numel() for p in params)}
    line = json.dumps(result)
    print(line)
    if args.json:
        with open(args.json, "w") as out:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
