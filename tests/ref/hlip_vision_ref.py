#!/usr/bin/python3
"""Independent float64 reference of the HLIP vision tower (spec hlip-model.md sections 3, 7, 8, 9).

Writes small reference cases into tests/data/vision/<case>/ for the C++ tests:
  model.safetensors     visual.trunk.* / visual.head.* weights (open_clip names; random weights rounded to
                        float16 and stored as F16 to keep the files small, the frozen sin-cos embeddings as F32)
  input.safetensors     image [B, N, 1, D, H, W] (F16-exact values), optional image_alt
  expected.safetensors  vision.patch_tokens, vision.pos_embed, vision.blocks.{i}.out (some), vision.features,
                        vision.pooled, image_features (+ alt.*), all F32, computed in float64
and inflate-2d/ (2D -> 3D initialisation, spec 3.12): vit2d.safetensors, expected.safetensors.

Usage: /usr/bin/python3 tests/ref/hlip_vision_ref.py [OUT_DIR]   (Debian python3-torch 1.13 + numpy only)
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

SLICE, SCAN, STUDY = "slice", "scan", "study"
RANK = {SLICE: 0, SCAN: 1, STUDY: 2}

# ---------------------------------------------------------------------------------------------- safetensors


def write_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer (numpy); tensors: name -> (dtype code, numpy array)."""
    codes = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        code, array = tensors[name]
        data = np.ascontiguousarray(array, dtype=codes[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


# ---------------------------------------------------------------------------------------------- sin-cos (3.2, 3.3)


def e1(c, positions):
    """E1(c, p) in float32 in the official order (numpy): [n, c], sines then cosines."""
    assert c % 2 == 0
    k = c // 2
    omega = np.arange(k, dtype=np.float32) / np.float32(k)
    omega = np.float32(1.0) / (np.float32(10000) ** omega)
    angles = np.einsum("m,d->md", np.asarray(positions, dtype=np.float32).reshape(-1), omega).astype(np.float32)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


def spatial_sincos3d(c, d, h, w):
    t = c // 3
    assert c % 3 == 0
    out = np.zeros((d, h, w, c), np.float32)
    out[..., 0:t] = e1(t, np.arange(w))[None, None, :, :]
    out[..., t:2 * t] = e1(t, np.arange(h))[None, :, None, :]
    out[..., 2 * t:] = e1(t, np.arange(d))[:, None, None, :]
    return out[None]


def spatial_sincos1d2d(c, d, h, w):
    plane = np.zeros((h, w, c), np.float32)
    plane[..., : c // 2] = e1(c // 2, np.arange(w))[None, :, :]
    plane[..., c // 2:] = e1(c // 2, np.arange(h))[:, None, :]
    return (e1(c, np.arange(d))[:, None, None, :] + plane[None]).astype(np.float32)[None]


def linear_resample_axis(x, axis, n_out):
    """Half-pixel linear interpolation (align_corners=False) of axis `axis` to n_out samples, float64."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    rows = []
    for i in range(n_out):
        src = max(0.0, (i + 0.5) * n_in / n_out - 0.5)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        t = src - i0
        rows.append(x.select(axis, i0) * (1.0 - t) + x.select(axis, i1) * t)
    return torch.stack(rows, axis)


# ---------------------------------------------------------------------------------------------- configs


def levels_of(depth, slice_idx, scan_idx, study_idx):
    levels = [None] * depth
    for idx, name in ((slice_idx, SLICE), (scan_idx, SCAN), (study_idx, STUDY)):
        for i in idx:
            assert levels[i] is None
            levels[i] = name
    assert all(levels)
    return levels


CASES = {
    # Appendix A.2 vision tower.
    "tiny-cls-scanstudy": dict(seed=0, C=96, depth=4, heads=4, img=(8, 24, 40), patch=(4, 8, 8),
                               levels=levels_of(4, [], [0, 1, 3], [2]), reg=0, pool="cls", M=0,
                               spatial="sincos1d+2d", E=24, image=(1, 3, 8, 24, 40), keep_blocks=[0, 2]),
    # Appendix A.3 vision tower: all six re-partitions, dual dino.txt, seq-pos-emb, alternative input.
    "tiny-dinotxt-slicescanstudy-seqpos": dict(seed=1, C=72, depth=7, heads=3, img=(8, 24, 40), patch=(2, 8, 8),
                                               levels=levels_of(7, [0, 2, 6], [1, 4], [3, 5]), reg=1, pool="dual",
                                               M=5, spatial="sincos3d", E=32, image=(1, 3, 8, 24, 40),
                                               alt=(1, 7, 12, 24, 40), keep_blocks=[0, 3, 6]),
    # CT-style slice+scan (final scan -> study merge), two studies in the batch, register token with CLS pooling.
    "micro-slicescan-cls-b2": dict(seed=2, C=24, depth=3, heads=2, img=(4, 16, 16), patch=(2, 8, 8),
                                   levels=levels_of(3, [0, 1], [2], []), reg=1, pool="cls", M=0,
                                   spatial="sincos1d+2d", E=8, image=(2, 2, 4, 16, 16), keep_blocks=[0, 1, 2]),
    # Every block at study level, dino.txt with P = 1, more slices than in training (spatial resample).
    "micro-study-dinotxt-resample": dict(seed=3, C=24, depth=2, heads=2, img=(4, 16, 16), patch=(2, 8, 8),
                                         levels=levels_of(2, [], [], [0, 1]), reg=0, pool="dinotxt", M=0,
                                         spatial="sincos3d", E=8, image=(1, 2, 6, 16, 24), keep_blocks=[0, 1]),
    # Axial RoPE (3.11): head dim 16 -> s = 4, channels 12..15 untouched; scan-first, dual.
    "micro-rope-scanstudy": dict(seed=4, C=32, depth=3, heads=2, img=(4, 16, 24), patch=(2, 8, 8),
                                 levels=levels_of(3, [], [0, 2], [1]), reg=1, pool="dual", M=4,
                                 spatial="sincos1d+2d", E=8, image=(1, 3, 4, 16, 24), rope=True,
                                 keep_blocks=[0, 1, 2]),
}


def random_weights(cfg):
    """Seeded random trunk + head weights, rounded to float16 (stored F16), frozen embeddings in float32."""
    g = torch.Generator().manual_seed(cfg["seed"])
    C, depth = cfg["C"], cfg["depth"]
    pd, ph, pw = cfg["patch"]
    d, h, w = (cfg["img"][i] // cfg["patch"][i] for i in range(3))
    hidden = 4 * C
    nf = C if cfg["pool"] == "cls" else 2 * C

    def normal(shape, std):
        return (torch.randn(shape, generator=g, dtype=torch.float64) * std).half().double()

    def linear(out_f, in_f):
        return normal((out_f, in_f), 1.0 / math.sqrt(in_f))

    def ln():
        return (1.0 + 0.1 * torch.randn(C, generator=g, dtype=torch.float64)).half().double()

    sd = {}
    t = "visual.trunk."
    sd[t + "cls_token"] = normal((1, 1, C), 0.5)
    if cfg["reg"]:
        sd[t + "reg_token"] = normal((1, cfg["reg"], C), 0.5)
    spatial = spatial_sincos3d(C, d, h, w) if cfg["spatial"] == "sincos3d" else spatial_sincos1d2d(C, d, h, w)
    sd[t + "spatial_posemb"] = torch.from_numpy(spatial).double()
    if cfg["M"] > 1:
        sd[t + "sequential_posemb"] = torch.from_numpy(e1(C, np.arange(cfg["M"]))[None]).double()
    sd[t + "patch_embed.proj.weight"] = normal((C, 1, pd, ph, pw), 1.0 / math.sqrt(pd * ph * pw))
    sd[t + "patch_embed.proj.bias"] = normal((C,), 0.05)
    for i in range(depth):
        b = f"{t}blocks.{i}."
        sd[b + "norm1.weight"], sd[b + "norm1.bias"] = ln(), normal((C,), 0.05)
        sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"] = linear(3 * C, C), normal((3 * C,), 0.05)
        sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"] = linear(C, C), normal((C,), 0.05)
        sd[b + "norm2.weight"], sd[b + "norm2.bias"] = ln(), normal((C,), 0.05)
        sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"] = linear(hidden, C), normal((hidden,), 0.05)
        sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"] = linear(C, hidden), normal((C,), 0.05)
    sd[t + "norm.weight"], sd[t + "norm.bias"] = ln(), normal((C,), 0.05)
    sd["visual.head.proj.weight"] = linear(cfg["E"], nf)
    return sd, g


# ---------------------------------------------------------------------------------------------- forward (float64)


def rope_rotate(x, pos):
    """x [W, heads, T, hd], pos [W, T, 3] (z, y, x): adjacent pairs of [0,s), [s,2s), [2s,3s) rotated (3.11)."""
    hd = x.shape[-1]
    s = 2 * ((hd // 3) // 2)
    out = x.clone()
    for axis in range(3):
        for j in range(s // 2):
            omega = 1.0 / (10000.0 ** (j / (s / 2)))
            theta = (pos[:, :, axis] * omega)[:, None, :]  # [W, 1, T]
            c0 = axis * s + 2 * j
            u0, u1 = x[..., c0], x[..., c0 + 1]
            out[..., c0] = u0 * torch.cos(theta) - u1 * torch.sin(theta)
            out[..., c0 + 1] = u1 * torch.cos(theta) + u0 * torch.sin(theta)
    return out


def block_forward(x, sd, prefix, heads, P, rope_pos):
    W, T, C = x.shape
    hd = C // heads
    y = F.layer_norm(x, (C,), sd[prefix + "norm1.weight"], sd[prefix + "norm1.bias"], eps=1e-6)
    qkv = y @ sd[prefix + "attn.qkv.weight"].T + sd[prefix + "attn.qkv.bias"]
    q, k, v = (qkv[..., i * C:(i + 1) * C].reshape(W, T, heads, hd).permute(0, 2, 1, 3) for i in range(3))
    if rope_pos is not None:
        q = torch.cat([q[:, :, :P], rope_rotate(q[:, :, P:], rope_pos)], 2)
        k = torch.cat([k[:, :, :P], rope_rotate(k[:, :, P:], rope_pos)], 2)
    scores = torch.einsum("whqd,whkd->whqk", q * hd ** -0.5, k)
    o = torch.einsum("whqk,whkd->whqd", torch.softmax(scores, -1), v).permute(0, 2, 1, 3).reshape(W, T, C)
    x = x + o @ sd[prefix + "attn.proj.weight"].T + sd[prefix + "attn.proj.bias"]
    y = F.layer_norm(x, (C,), sd[prefix + "norm2.weight"], sd[prefix + "norm2.bias"], eps=1e-6)
    hmid = F.gelu(y @ sd[prefix + "mlp.fc1.weight"].T + sd[prefix + "mlp.fc1.bias"])
    return x + hmid @ sd[prefix + "mlp.fc2.weight"].T + sd[prefix + "mlp.fc2.bias"]


def windows_of(level, B, N, d):
    return {SLICE: B * N * d, SCAN: B * N, STUDY: B}[level]


def convert_prefix(prefix, src, dst, B, N, d):
    """Prefix tokens [windows(src), P, C] -> [windows(dst), P, C]: group mean (merge) or copies (split)."""
    ws, wd = windows_of(src, B, N, d), windows_of(dst, B, N, d)
    if ws == wd:
        return prefix
    if ws > wd:
        return prefix.reshape(wd, ws // wd, *prefix.shape[1:]).mean(1)
    return torch.repeat_interleave(prefix, wd // ws, dim=0)


def vision_forward(cfg, sd, image):
    """image [B, N, 1, D, H, W] float64 -> dict of named outputs (spec section 9 names)."""
    t = "visual.trunk."
    C, heads, P = cfg["C"], cfg["heads"], 1 + cfg["reg"]
    B, N, _, D, H, W = image.shape
    pd, ph, pw = cfg["patch"]
    conv = F.conv3d(image.reshape(B * N, 1, D, H, W), sd[t + "patch_embed.proj.weight"],
                    sd[t + "patch_embed.proj.bias"], stride=(pd, ph, pw))
    d, h, w = conv.shape[2:]
    x = conv.permute(0, 2, 3, 4, 1).reshape(B, N, d, h, w, C)
    out = {"vision.patch_tokens": x}

    spatial = sd[t + "spatial_posemb"][0]
    for axis, n in enumerate((d, h, w)):
        spatial = linear_resample_axis(spatial, axis, n)
    pos = spatial[None].expand(N, d, h, w, C)
    if t + "sequential_posemb" in sd:
        seq = sd[t + "sequential_posemb"][0]
        seq = seq[:N] if N <= seq.shape[0] else linear_resample_axis(seq, 0, N)
        pos = pos + seq[:, None, None, None, :]
    out["vision.pos_embed"] = pos[None]
    x = x + pos[None]

    # Patch tokens in global (study) order [B, N*L, C]; a level's windows are consecutive runs of it.
    L = d * h * w
    tokens = x.reshape(B, N * L, C)
    scan_index = torch.arange(N * L) % L
    rope_all = torch.stack([scan_index // (h * w), (scan_index % (h * w)) // w, scan_index % w], -1).double()
    levels = cfg["levels"]
    level = levels[0]
    prefix_tokens = [sd[t + "cls_token"]] + ([sd[t + "reg_token"]] if cfg["reg"] else [])
    prefix = torch.cat(prefix_tokens, 1).expand(windows_of(level, B, N, d), P, C)
    for i, nxt in enumerate(levels):
        prefix = convert_prefix(prefix, level, nxt, B, N, d)
        level = nxt
        nw = windows_of(level, B, N, d)
        xw = torch.cat([prefix, tokens.reshape(nw, -1, C)], 1)
        rope_pos = rope_all[None].expand(B, N * L, 3).reshape(nw, -1, 3) if cfg.get("rope") else None
        xw = block_forward(xw, sd, f"{t}blocks.{i}.", heads, P, rope_pos)
        out[f"vision.blocks.{i}.out"] = xw
        prefix, tokens = xw[:, :P], xw[:, P:].reshape(B, N * L, C)
    prefix = convert_prefix(prefix, level, STUDY, B, N, d)
    feats = F.layer_norm(torch.cat([prefix, tokens], 1), (C,), sd[t + "norm.weight"], sd[t + "norm.bias"], eps=1e-6)
    out["vision.features"] = feats
    if cfg["pool"] == "cls":
        pooled = feats[:, :1]
    else:
        mean = feats[:, P:].mean(1, keepdim=True)
        pooled = torch.cat([feats[:, :P], mean.expand(B, P, C)], -1)
    out["vision.pooled"] = pooled
    out["image_features"] = pooled @ sd["visual.head.proj.weight"].T
    return out


# ---------------------------------------------------------------------------------------------- 2D -> 3D (3.12)


def inflate_reference(sd2d, C, patch, grid, M, num_blocks, central):
    pd, ph, pw = patch
    d, h, w = grid
    out = {}
    pos = sd2d["pos_embed"].float()
    cls = sd2d["cls_token"].clone()
    n = pos.shape[1]
    if int(math.isqrt(n)) ** 2 != n:
        cls = cls + pos[:, :1]
        pos = pos[:, 1:]
    out["cls_token"] = cls
    k = sd2d["patch_embed.proj.weight"].float()
    if tuple(k.shape[2:]) != (ph, pw):
        k = F.interpolate(k, size=(ph, pw), mode="bicubic", align_corners=False)
    k = k.sum(1, keepdim=True)
    if central:
        w3 = torch.zeros(C, 1, pd, ph, pw)
        w3[:, :, pd // 2] = k
    else:
        w3 = k.unsqueeze(2).repeat(1, 1, pd, 1, 1) / pd
    out["patch_embed.proj.weight"] = w3
    out["patch_embed.proj.bias"] = sd2d["patch_embed.proj.bias"]
    s = int(math.isqrt(pos.shape[1]))
    q = pos.reshape(1, s, s, C)
    if (s, s) != (h, w):
        q = F.interpolate(q.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", antialias=True,
                          align_corners=False).permute(0, 2, 3, 1)
    depth = torch.from_numpy(e1(C, np.arange(d)))
    out["spatial_posemb"] = (depth[:, None, None, :] + q[0][None]).unsqueeze(0)
    if M > 1:
        out["sequential_posemb"] = torch.from_numpy(e1(C, np.arange(M)))[None]
    for key, value in sd2d.items():
        # Blocks the 3D model does not have are dropped (the official loader ignores them: strict=False).
        if (key.startswith("blocks.") and int(key.split(".")[1]) < num_blocks) or key in ("norm.weight", "norm.bias"):
            out[key] = value
    return out


def write_inflate_case(root):
    g = torch.Generator().manual_seed(7)
    C = 24
    sd2d = {
        "cls_token": torch.randn(1, 1, C, generator=g),
        "pos_embed": torch.randn(1, 17, C, generator=g),  # class row + 4x4 grid
        "patch_embed.proj.weight": torch.randn(C, 3, 4, 4, generator=g) * 0.2,
        "patch_embed.proj.bias": torch.randn(C, generator=g) * 0.05,
        "blocks.0.norm1.weight": torch.randn(C, generator=g),
        "blocks.1.norm1.weight": torch.randn(C, generator=g),
        "norm.weight": torch.randn(C, generator=g),
        "head.weight": torch.randn(5, C, generator=g),
    }
    folder = os.path.join(root, "inflate-2d")
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "vit2d.safetensors"),
                      {k: ("F32", v.numpy()) for k, v in sd2d.items()}, {"format": "pt", "generator": "hlip_vision_ref.py"})
    expected = {}
    # Target: width 24, patch (3, 6, 6) (kernel 4 -> 6 bicubic), grid (2, 3, 5) (pos 4x4 -> 3x5), depth 1, M 4.
    for name, central in (("average", False), ("central", True)):
        for key, value in inflate_reference(sd2d, C, (3, 6, 6), (2, 3, 5), 4, 1, central).items():
            expected[f"{name}.{key}"] = ("F32", value.float().numpy())
    write_safetensors(os.path.join(folder, "expected.safetensors"), expected,
                      {"format": "pt", "generator": "hlip_vision_ref.py", "target": "width 24 depth 1 heads 2 "
                       "img (6,18,30) patch (3,6,6) max_num_scans 4"})


# ---------------------------------------------------------------------------------------------- cases


def write_case(root, name, cfg):
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    sd, g = random_weights(cfg)
    frozen = ("spatial_posemb", "sequential_posemb")
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      {k: ("F32" if k.endswith(frozen) else "F16", v.numpy()) for k, v in sd.items()},
                      {"format": "pt", "generator": "hlip_vision_ref.py", "case": name, "seed": str(cfg["seed"])})
    B, N, D, H, W = cfg["image"]
    image = torch.randn(B, N, 1, D, H, W, generator=g, dtype=torch.float64).half().double()
    inputs = {"image": ("F16", image.numpy())}
    results = vision_forward(cfg, sd, image)
    if "alt" in cfg:
        B2, N2, D2, H2, W2 = cfg["alt"]
        alt = torch.randn(B2, N2, 1, D2, H2, W2, generator=g, dtype=torch.float64).half().double()
        inputs["image_alt"] = ("F16", alt.numpy())
        alt_out = vision_forward(cfg, sd, alt)
        for key in ("vision.pos_embed", "vision.pooled", "image_features"):
            results["alt." + key] = alt_out[key]
    write_safetensors(os.path.join(folder, "input.safetensors"), inputs, {"format": "pt", "case": name})
    expected = {}
    for key, value in results.items():
        if key.startswith("vision.blocks.") and int(key.split(".")[2]) not in cfg["keep_blocks"]:
            continue
        expected[key] = ("F32", value.float().numpy())
    write_safetensors(os.path.join(folder, "expected.safetensors"), expected,
                      {"format": "pt", "generator": "hlip_vision_ref.py", "case": name,
                       "config": json.dumps({k: v for k, v in cfg.items() if k != "keep_blocks"})})


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "vision")
    os.makedirs(root, exist_ok=True)
    torch.set_num_threads(1)
    for name, cfg in CASES.items():
        write_case(root, name, cfg)
    write_inflate_case(root)
    print("wrote", root)


if __name__ == "__main__":
    main()
