#!/usr/bin/python3
"""Whole-model reference cases of HLIP's CLIP wrapper (spec hlip-model.md sections 5, 6, 8, 9), for `hlip forward`
and the C++ HlipClip: the vision tower of tests/ref/hlip_vision_ref.py and the BERT tower of tests/ref/hlip_text_ref.py
(same seeds, so the weights are those of tests/data/vision/<case> and, for the tiny cases, tests/data/text), plus
logit_scale / logit_bias, normalisation, logits and the losses, all in float64.

For every vision case it writes tests/data/clip/<case>/:
  open_clip_config.json  {"model_cfg": {embed_dim, init_logit_scale, [init_logit_bias], vision_cfg with the
                         `hlip` block, text_cfg with `hf_config`}, "preprocess_cfg", "hlip_case"} (spec section 9)
  text.safetensors       text.* weights, logit_scale, [logit_bias] (F32). The vision weights are not repeated:
                         the model is tests/data/vision/<case>/model.safetensors + this file.
  input_study.safetensors image [B, N, 1, D, H, W] (F16, = the vision case's input), [image_alt], input_ids and
                         attention_mask [3, ctx] (I64)
  expected.safetensors   text.last_hidden_state, text.pooled, text_features, text_embeds, image_embeds,
                         logits_per_image [B, P, T], logits_report [B, T] (P = 2 with logit_bias), alt.image_embeds,
                         alt.logits_per_image, [alt.logits_report]; loss.* on synthetic normalised features
                         (loss.image_embeds [4, P, E], loss.text_sentence, loss.text_report, loss.clip (row 0,
                         s = exp(logit_scale)), loss.siglip (row 0, s = 10, b = -10), loss.dual (P = 2 with
                         logit_bias)). F32. The vision.* and image_features outputs are those of
                         tests/data/vision/<case>/expected.safetensors.
Run: /usr/bin/python3 tests/ref/hlip_clip_ref.py   (after hlip_vision_ref.py; it checks it reproduces that case)
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hlip_text_ref as T  # noqa: E402
import hlip_vision_ref as V  # noqa: E402
import make_loss_ref as L  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
BIOMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"

# Text tower and logit parameters per vision case. The two tiny cases use the spec's section 9 text towers.
TEXT = {
    "tiny-cls-scanstudy": T.CASES["tiny-cls-scanstudy"],
    "tiny-dinotxt-slicescanstudy-seqpos": T.CASES["tiny-dinotxt-slicescanstudy-seqpos"],
    "micro-slicescan-cls-b2": dict(seed=12, vocab=40, hidden=16, layers=1, heads=2, intermediate=32, positions=16,
                                   context=10, embed=8),
    "micro-study-dinotxt-resample": dict(seed=13, vocab=50, hidden=24, layers=2, heads=3, intermediate=48,
                                         positions=12, context=12, embed=8),
    "micro-rope-scanstudy": dict(seed=14, vocab=30, hidden=16, layers=2, heads=4, intermediate=16, positions=20,
                                 context=14, embed=8),
}
LOGITS = {  # (logit_scale, logit_bias or None)
    "tiny-cls-scanstudy": (2.3, None),
    "tiny-dinotxt-slicescanstudy-seqpos": (2.1, 1.7),
    "micro-slicescan-cls-b2": (2.659260036932778, None),
    "micro-study-dinotxt-resample": (2.0, None),
    "micro-rope-scanstudy": (2.2, 1.5),
}


def read_safetensors(path):
    codes = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8"}
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype=codes[info["dtype"]]).reshape(info["shape"])
    return out


def normalize(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def levels_to_indexes(levels):
    return {f"{name}_attn_indexes": [i for i, level in enumerate(levels) if level == name]
            for name in (V.SLICE, V.SCAN, V.STUDY)}


def model_cfg(case, vcfg, tcfg, logit_scale, logit_bias):
    hlip = {"img_size": list(vcfg["img"]), "patch_size": list(vcfg["patch"]), "in_chans": 1, "width": vcfg["C"],
            "depth": vcfg["depth"], "num_heads": vcfg["heads"], "mlp_ratio": 4.0, "norm_eps": 1e-6,
            "reg_tokens": vcfg["reg"], "global_pool_dinotxt": vcfg["pool"] != "cls",
            **levels_to_indexes(vcfg["levels"]), "max_num_scans": vcfg["M"], "spatial_posemb_init": vcfg["spatial"]}
    if vcfg.get("rope"):
        hlip["rope"] = True
    cfg = {"embed_dim": vcfg["E"], "init_logit_scale": logit_scale}
    if logit_bias is not None:
        cfg["init_logit_bias"] = logit_bias
    cfg["vision_cfg"] = {"timm_model_name": case, "timm_model_pretrained": False, "timm_pool": "token",
                         "timm_proj": "linear", "timm_proj_bias": False, "timm_drop_path": 0.2, "patch_dropout": 0.0,
                         "hlip": hlip}
    cfg["text_cfg"] = {"hf_model_name": BIOMEDBERT, "hf_tokenizer_name": BIOMEDBERT,
                       "hf_pooler_type": "cls_last_hidden_state_pooler", "hf_proj_type": "linear",
                       "context_length": tcfg["context"],
                       "hf_config": {"vocab_size": tcfg["vocab"], "hidden_size": tcfg["hidden"],
                                     "num_hidden_layers": tcfg["layers"], "num_attention_heads": tcfg["heads"],
                                     "intermediate_size": tcfg["intermediate"],
                                     "max_position_embeddings": tcfg["positions"], "type_vocab_size": 2,
                                     "layer_norm_eps": 1e-12, "pad_token_id": 0, "hidden_act": "gelu",
                                     "position_embedding_type": "absolute"}}
    return cfg


def clip_outputs(prefix, image_features, text_embeds, logit_scale, logit_bias):
    img = normalize(image_features)
    out = {prefix + "image_embeds": img,
           prefix + "logits_per_image": np.exp(logit_scale) * torch.einsum("bpe,te->bpt", img, text_embeds)}
    if img.shape[1] == 2 and logit_bias is not None:
        out[prefix + "logits_report"] = np.exp(logit_bias) * img[:, 1] @ text_embeds.T
    return out


def loss_outputs(g, P, E, logit_scale, logit_bias):
    img = normalize(torch.randn(4, P, E, generator=g, dtype=torch.float64))
    sentence = normalize(torch.randn(4, E, generator=g, dtype=torch.float64))
    report = normalize(torch.randn(4, E, generator=g, dtype=torch.float64))
    scale = torch.tensor(logit_scale, dtype=torch.float64)
    out = {"loss.image_embeds": img, "loss.text_sentence": sentence, "loss.text_report": report,
           "loss.clip": L.clip_loss(img[:, 0], sentence, torch.exp(scale)),
           "loss.siglip": L.siglip_loss(img[:, 0], sentence, 10.0, -10.0)}
    if P == 2 and logit_bias is not None:
        out["loss.dual"] = L.dual_loss(img, sentence, report, scale, torch.tensor(logit_bias, dtype=torch.float64))[0]
    return out


def write_case(case):
    vcfg, tcfg = V.CASES[case], TEXT[case]
    logit_scale, logit_bias = LOGITS[case]
    assert vcfg["E"] == tcfg["embed"]
    folder = os.path.join(DATA, "clip", case)
    os.makedirs(folder, exist_ok=True)

    # Vision: the same draws as hlip_vision_ref.write_case, checked against its files.
    sd, g = V.random_weights(vcfg)
    B, N, D, H, W = vcfg["image"]
    image = torch.randn(B, N, 1, D, H, W, generator=g, dtype=torch.float64).half().double()
    vision_dir = os.path.join(DATA, "vision", case)
    stored_input = read_safetensors(os.path.join(vision_dir, "input.safetensors"))
    assert np.array_equal(stored_input["image"], image.half().numpy()), case
    vision = V.vision_forward(vcfg, sd, image)
    stored = read_safetensors(os.path.join(vision_dir, "expected.safetensors"))
    assert np.allclose(stored["image_features"], vision["image_features"].numpy(), atol=1e-5), case
    inputs = {"image": ("F16", image.numpy())}
    alt_features = None
    if "alt" in vcfg:
        B2, N2, D2, H2, W2 = vcfg["alt"]
        alt = torch.randn(B2, N2, 1, D2, H2, W2, generator=g, dtype=torch.float64).half().double()
        assert np.array_equal(stored_input["image_alt"], alt.half().numpy()), case
        inputs["image_alt"] = ("F16", alt.numpy())
        alt_features = V.vision_forward(vcfg, sd, alt)["image_features"]

    # Text.
    tg = torch.Generator().manual_seed(tcfg["seed"])
    weights = T.weights(tcfg, tg)
    ids = T.input_ids(tcfg, tg)
    hidden, pooled, text_features = T.bert(weights, ids, tcfg)
    inputs["input_ids"] = ("I64", ids.numpy())
    inputs["attention_mask"] = ("I64", (ids != T.PAD).long().numpy())
    text_embeds = normalize(text_features)

    expected = {"text.last_hidden_state": hidden, "text.pooled": pooled, "text_features": text_features,
                "text_embeds": text_embeds}
    expected.update(clip_outputs("", vision["image_features"], text_embeds, logit_scale, logit_bias))
    if alt_features is not None:
        expected.update(clip_outputs("alt.", alt_features, text_embeds, logit_scale, logit_bias))
    P = 1 + vcfg["reg"] if vcfg["pool"] != "cls" else 1
    expected.update(loss_outputs(torch.Generator().manual_seed(100 + vcfg["seed"]), P, vcfg["E"], logit_scale,
                                 logit_bias))

    text_state = {k: ("F32", v.numpy()) for k, v in weights.items()}
    text_state["logit_scale"] = ("F32", np.array(logit_scale, dtype=np.float32))
    if logit_bias is not None:
        text_state["logit_bias"] = ("F32", np.array(logit_bias, dtype=np.float32))
    meta = {"format": "pt", "generator": "hlip_clip_ref.py", "case": case}
    V.write_safetensors(os.path.join(folder, "text.safetensors"), text_state, meta)
    V.write_safetensors(os.path.join(folder, "input_study.safetensors"), inputs, meta)
    V.write_safetensors(os.path.join(folder, "expected.safetensors"),
                        {k: ("F32", v.detach().float().numpy()) for k, v in expected.items()}, meta)
    config = {"model_cfg": model_cfg(case, vcfg, tcfg, logit_scale, logit_bias),
              "preprocess_cfg": {"mean": [0.449], "std": [0.226]},
              "hlip_case": {"name": case, "seed": vcfg["seed"], "text_seed": tcfg["seed"],
                            "special_ids": {"pad": 0, "cls": 2, "sep": 3}}}
    with open(os.path.join(folder, "open_clip_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print("wrote", folder)


def main():
    torch.set_num_threads(1)
    for case in V.CASES:
        write_case(case)


if __name__ == "__main__":
    main()
