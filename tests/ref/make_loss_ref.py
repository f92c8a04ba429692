#!/usr/bin/python3
"""Reference values of HLIP's contrastive losses (spec hlip-model.md section 6), written from the spec's formulas
with explicit log-sum-exp / log-sigmoid arithmetic in float64 (no torch.nn.functional losses), plus the gradients
torch autograd takes through those formulas.

Writes tests/data/loss/cases.safetensors (all F64) for tests/unit/model/test_losses.cpp. Per case `<c>`:
  <c>.image, <c>.text (...)     L2-normalised inputs
  <c>.logit_scale_raw           the parameter; the losses use s = exp(raw)
  <c>.loss (dual: <c>.loss_sentence, <c>.loss_report)  values
  <c>.grad.<input>              d loss / d input (image, text, logit_scale_raw, ...)
Cases: CLIP (B = 1, 5, and s = 100 with near-identical features), CLIP local loss (local rows of a gathered batch
against all columns, labels offset), SigLIP (s = 10, b = -10; and negative-only against another text block),
HLIP dual (P = 2: 0.5 CLIP(row 0, sentences; exp(logit_scale)) + 0.5 CLIP(row 1, reports; exp(logit_bias))).
Run: /usr/bin/python3 tests/ref/make_loss_ref.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_safetensors_ref import serialize, tensor  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "loss")


def normalized(g, *shape):
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def cross_entropy(logits, labels):
    """Mean over rows of -log softmax(row)[label], with the max subtracted before exp."""
    top = logits.max(dim=1, keepdim=True).values
    log_sum = top[:, 0] + torch.log(torch.exp(logits - top).sum(dim=1))
    return (log_sum - logits[torch.arange(logits.shape[0]), labels]).mean()


def clip_loss(image, text, scale):
    """CLIP: s = exp(logit_scale) already applied by the caller; labels arange(B)."""
    labels = torch.arange(image.shape[0])
    return (cross_entropy(scale * image @ text.T, labels) + cross_entropy(scale * text @ image.T, labels)) / 2


def clip_loss_local(image, text, all_image, all_text, scale, offset):
    """open_clip local_loss: local rows against every gathered column, labels offset by the local rows' start."""
    labels = offset + torch.arange(image.shape[0])
    return (cross_entropy(scale * image @ all_text.T, labels) + cross_entropy(scale * text @ all_image.T, labels)) / 2


def log_sigmoid(z):
    """log(1 / (1 + exp(-z))), stable for both signs."""
    return torch.minimum(z, torch.zeros_like(z)) - torch.log1p(torch.exp(-z.abs()))


def siglip_loss(image, text, scale, bias, negative_only=False):
    """-sum_ij log sigmoid(y_ij (s I_i.T_j + b)) / B with y = 2 Id - 1 (all -1 when negative_only)."""
    logits = scale * image @ text.T + bias
    y = -torch.ones_like(logits)
    if not negative_only:
        y = y + 2 * torch.eye(logits.shape[0], dtype=logits.dtype)
    return -log_sigmoid(y * logits).sum() / image.shape[0]


def dual_loss(image, sentence, report, logit_scale_raw, logit_bias_raw):
    """HLIP dual loss; returns (total, sentence term, report term)."""
    s = clip_loss(image[:, 0], sentence, torch.exp(logit_scale_raw))
    r = clip_loss(image[:, 1], report, torch.exp(logit_bias_raw))
    return 0.5 * s + 0.5 * r, s, r


def with_grads(name, inputs, fn):
    """Evaluates fn(**leaves) and stores inputs, outputs and d(first output)/d(input) under `name.`."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    outputs = fn(**leaves)
    if not isinstance(outputs, dict):
        outputs = {"loss": outputs}
    grads = torch.autograd.grad(outputs["loss"], list(leaves.values()))
    out = {f"{name}.{k}": v for k, v in inputs.items()}
    assert not set(outputs) & set(inputs), "output names must differ from input names"
    out.update({f"{name}.{k}": v.detach() for k, v in outputs.items()})
    out.update({f"{name}.grad.{k}": g for k, g in zip(leaves, grads)})
    return out


def cases():
    g = torch.Generator().manual_seed(2024)
    out = {}
    ln_inv_007 = torch.tensor(2.659260036932778, dtype=torch.float64)

    def clip_fn(image, text, logit_scale_raw):
        return clip_loss(image, text, torch.exp(logit_scale_raw))

    out.update(with_grads("clip_b1", dict(image=normalized(g, 1, 8), text=normalized(g, 1, 8),
                                          logit_scale_raw=ln_inv_007.clone()), clip_fn))
    out.update(with_grads("clip_b5", dict(image=normalized(g, 5, 8), text=normalized(g, 5, 8),
                                          logit_scale_raw=ln_inv_007.clone()), clip_fn))
    # s = 100 (HLIP's clamp) on nearly identical features: logits up to 100 need the max-shifted log-sum-exp.
    base = normalized(g, 1, 6)
    near = base + 1e-3 * normalized(g, 4, 6)
    near = near / near.norm(dim=-1, keepdim=True)
    out.update(with_grads("clip_s100", dict(image=near, text=normalized(g, 4, 6),
                                            logit_scale_raw=torch.tensor(4.605170185988092, dtype=torch.float64)),
                          clip_fn))

    # Three "ranks" of two rows; this rank holds rows 2 and 3 of the gathered batch.
    all_image, all_text = normalized(g, 6, 8), normalized(g, 6, 8)

    def local_fn(image, text, logit_scale_raw):
        gathered_image = torch.cat([all_image[:2], image, all_image[4:]])
        gathered_text = torch.cat([all_text[:2], text, all_text[4:]])
        return clip_loss_local(image, text, gathered_image, gathered_text, torch.exp(logit_scale_raw), 2)

    local = with_grads("clip_local", dict(image=all_image[2:4].clone(), text=all_text[2:4].clone(),
                                          logit_scale_raw=torch.tensor(2.3, dtype=torch.float64)), local_fn)
    local["clip_local.all_image"], local["clip_local.all_text"] = all_image, all_text
    out.update(local)

    def siglip_fn(image, text, logit_scale_raw, logit_bias):
        return siglip_loss(image, text, torch.exp(logit_scale_raw), logit_bias)

    siglip_inputs = dict(image=normalized(g, 4, 8), text=normalized(g, 4, 8),
                         logit_scale_raw=torch.log(torch.tensor(10.0, dtype=torch.float64)),
                         logit_bias=torch.tensor(-10.0, dtype=torch.float64))
    out.update(with_grads("siglip", siglip_inputs, siglip_fn))

    def siglip_negative_fn(image, text, logit_scale_raw, logit_bias):
        return siglip_loss(image, text, torch.exp(logit_scale_raw), logit_bias, negative_only=True)

    negative_inputs = dict(siglip_inputs, text=normalized(g, 4, 8), logit_bias=torch.tensor(-2.0, dtype=torch.float64))
    out.update(with_grads("siglip_negative", negative_inputs, siglip_negative_fn))

    def dual_fn(image, sentence, report, logit_scale_raw, logit_bias_raw):
        total, s, r = dual_loss(image, sentence, report, logit_scale_raw, logit_bias_raw)
        return {"loss": total, "loss_sentence": s, "loss_report": r}

    out.update(with_grads("dual", dict(image=normalized(g, 4, 2, 8), sentence=normalized(g, 4, 8),
                                       report=normalized(g, 4, 8), logit_scale_raw=torch.tensor(2.1, dtype=torch.float64),
                                       logit_bias_raw=torch.tensor(1.7, dtype=torch.float64)), dual_fn))
    return out


def selftest():
    """The formulas against torch's own losses (a check of this file, not used for the reference values)."""
    g = torch.Generator().manual_seed(1)
    i, t = normalized(g, 5, 7), normalized(g, 5, 7)
    labels = torch.arange(5)
    expected = (torch.nn.functional.cross_entropy(14 * i @ t.T, labels)
                + torch.nn.functional.cross_entropy(14 * t @ i.T, labels)) / 2
    assert torch.allclose(clip_loss(i, t, 14.0), expected, atol=1e-12)
    z = torch.linspace(-50, 50, 101, dtype=torch.float64)
    assert torch.allclose(log_sigmoid(z), torch.nn.functional.logsigmoid(z), atol=1e-12)
    assert torch.allclose(clip_loss_local(i, t, i, t, 14.0, 0), clip_loss(i, t, 14.0))


def main():
    selftest()
    os.makedirs(OUT, exist_ok=True)
    entries = {k: tensor("F64", v.detach().contiguous().numpy()) for k, v in cases().items()}
    path = os.path.join(OUT, "cases.safetensors")
    with open(path, "wb") as f:
        f.write(serialize(entries, {"format": "pt", "generator": "tests/ref/make_loss_ref.py"}))
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(entries)} tensors)")


if __name__ == "__main__":
    main()
