"""Key layouts of ResMLP state dicts, and exact conversions between them.

Three layouts exist for the same tensors:

* ``resmlp`` (this library): ``blocks.i.token_mix.{norm,op,ls}``, ``blocks.i.channel_mix.{norm,op.fc1,op.fc2,ls}``.
* ``deit`` (the official facebookresearch/deit files): ``blocks.i.{norm1,attn,gamma_1,norm2,mlp.fc1,mlp.fc2,
  gamma_2}``; Affine parameters of shape (d,).
* ``timm`` (``resmlp_*_224``): ``stem.proj``, ``blocks.i.{norm1,linear_tokens,ls1,norm2,mlp_channels,ls2}``;
  Affine parameters of shape (1, 1, d).

Every conversion goes through ``resmlp``; each is a pure renaming plus the Affine reshape, so round trips are
exact.
"""

from __future__ import annotations

import re

import torch

LAYOUTS = ("resmlp", "deit", "timm")

# Per-block suffixes: ours -> deit -> timm. Affine alphas and betas are reshaped separately.
_BLOCK_KEYS = [
    ("token_mix.norm.alpha", "norm1.alpha", "norm1.alpha"),
    ("token_mix.norm.beta", "norm1.beta", "norm1.beta"),
    ("token_mix.op.weight", "attn.weight", "linear_tokens.weight"),
    ("token_mix.op.bias", "attn.bias", "linear_tokens.bias"),
    ("token_mix.ls.gamma", "gamma_1", "ls1"),
    ("channel_mix.norm.alpha", "norm2.alpha", "norm2.alpha"),
    ("channel_mix.norm.beta", "norm2.beta", "norm2.beta"),
    ("channel_mix.op.fc1.weight", "mlp.fc1.weight", "mlp_channels.fc1.weight"),
    ("channel_mix.op.fc1.bias", "mlp.fc1.bias", "mlp_channels.fc1.bias"),
    ("channel_mix.op.fc2.weight", "mlp.fc2.weight", "mlp_channels.fc2.weight"),
    ("channel_mix.op.fc2.bias", "mlp.fc2.bias", "mlp_channels.fc2.bias"),
    ("channel_mix.ls.gamma", "gamma_2", "ls2"),
]
_TOP_KEYS = [
    ("patch_embed.proj.weight", "patch_embed.proj.weight", "stem.proj.weight"),
    ("patch_embed.proj.bias", "patch_embed.proj.bias", "stem.proj.bias"),
    ("norm.alpha", "norm.alpha", "norm.alpha"),
    ("norm.beta", "norm.beta", "norm.beta"),
    ("head.weight", "head.weight", "head.weight"),
    ("head.bias", "head.bias", "head.bias"),
]
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _tables(layout: str) -> tuple[dict[str, str], dict[str, str]]:
    """(ours -> layout, layout -> ours) suffix tables for blocks and top-level keys combined."""
    col = LAYOUTS.index(layout)
    block = {row[0]: row[col] for row in _BLOCK_KEYS}
    top = {row[0]: row[col] for row in _TOP_KEYS}
    return block, top


def detect_layout(state_dict: dict[str, torch.Tensor]) -> str:
    """Which layout a state dict is in, from its keys; raises ``ValueError`` if it is none of them."""
    keys = set(state_dict)
    if any(k.startswith("stem.") or ".linear_tokens." in k or k.endswith(".ls1") for k in keys):
        return "timm"
    if any(".attn." in k or k.endswith(".gamma_1") or ".mlp.fc1." in k for k in keys):
        return "deit"
    if any(".token_mix." in k or ".channel_mix." in k for k in keys) or "patch_embed.proj.weight" in keys:
        return "resmlp"
    sample = ", ".join(sorted(keys)[:6])
    raise ValueError(f"not a ResMLP state dict: no key matches the resmlp, deit or timm layouts (first keys: {sample})")


def _is_affine(our_key: str) -> bool:
    return our_key.endswith(".alpha") or our_key.endswith(".beta")


def convert(state_dict: dict[str, torch.Tensor], source: str, target: str) -> dict[str, torch.Tensor]:
    """Rename (and reshape Affine parameters of) ``state_dict`` from layout ``source`` to ``target``.

    Keys that belong to no layout (a DINO projection head, an optimiser entry) are returned unchanged, so the
    caller's strict key check reports them.
    """
    for name in (source, target):
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; choose one of {LAYOUTS}")
    if source == target:
        return dict(state_dict)
    src_block, src_top = _tables(source)
    dst_block, dst_top = _tables(target)
    from_src_block = {v: k for k, v in src_block.items()}
    from_src_top = {v: k for k, v in src_top.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = _BLOCK_RE.match(key)
        if match and match.group(2) in from_src_block:
            ours = from_src_block[match.group(2)]
            new_key = f"blocks.{match.group(1)}.{dst_block[ours]}"
        elif key in from_src_top:
            ours = from_src_top[key]
            new_key = dst_top[ours]
        else:
            out[key] = value
            continue
        if _is_affine(ours):
            # timm keeps Affine vectors as (1, 1, d); deit and we keep (d,).
            value = value.reshape(1, 1, -1) if target == "timm" else value.reshape(-1)
        out[new_key] = value
    return out


def to_resmlp(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any supported layout -> this library's layout."""
    return convert(state_dict, detect_layout(state_dict), "resmlp")
