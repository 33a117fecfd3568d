"""resmlp.fuse and the fast (folded, token-major, oneDNN) forward pass, against the straightforward formulation."""

import pytest
import torch

import resmlp
from resmlp import create_model
from resmlp.fast import FusedResMLP, gemm
from resmlp.fast.gemm import left_matmul, linear
from resmlp.flops import count_macs, model_stats


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every Affine, LayerScale and bias a non-trivial value: at init (alpha 1, beta 0, gamma constant, zero
    biases) folding would be close to trivial and a wrong fold could go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                centre = 1.0 if name.endswith("alpha") else 0.0
                p.copy_(centre + 0.5 * torch.randn(p.shape, generator=gen))
    return model


def reference_forward(model: resmlp.ResMLP, x: torch.Tensor) -> torch.Tensor:
    """The model composed from its layers' own forward passes: (B, N, C) layout, Affine and LayerScale unfolded."""
    tokens = model.patch_embed(x)
    for block in model.blocks:
        tokens = block(tokens)
    return model.forward_head(model.norm(tokens))


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    err = (actual.float() - expected.float()).abs().max() / expected.float().abs().max()
    assert err <= rel, f"relative error {err:.2e} > {rel:.0e}"


def images(model, batch: int, seed: int = 1) -> torch.Tensor:
    cfg = model.config
    return torch.randn(batch, cfg.in_chans, *cfg.image_hw, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["resmlp_tiny", "resmlp_mini"])
def test_fused_matches_plain_model(name):
    model = randomise(create_model(name)).eval()
    x = images(model, 3)
    fused = resmlp.fuse(model)
    assert isinstance(fused, FusedResMLP) and not fused.training
    assert not any(p.requires_grad for p in fused.parameters())
    with torch.no_grad():
        expected = reference_forward(model, x)
        assert_rel_close(fused(x), expected, 1e-4)
        assert_rel_close(model(x), expected, 1e-4)
        features = fused.forward_features(x)
        assert_rel_close(features, model.norm(model.blocks(model.patch_embed(x))), 1e-4)
        assert_rel_close(fused.forward_head(features), expected, 1e-4)
        assert_rel_close(fused.forward_head(features, pre_logits=True), features.mean(1), 1e-6)


def test_fused_matches_s12_at_224():
    torch.manual_seed(0)
    model = randomise(create_model("resmlp_s12")).eval()
    x = images(model, 2)
    with torch.no_grad():
        assert_rel_close(resmlp.fuse(model)(x), reference_forward(model, x), 1e-4)


def test_fused_without_head_returns_pooled_features():
    model = randomise(create_model("resmlp_tiny", num_classes=0)).eval()
    x = images(model, 2)
    with torch.no_grad():
        out = resmlp.fuse(model)(x)
        assert out.shape == (2, 32)
        assert_rel_close(out, reference_forward(model, x), 1e-4)


def test_fused_bf16_autocast_computes_in_bf16_with_cached_weights():
    model = randomise(create_model("resmlp_mini")).eval()
    x = images(model, 2)
    fused = resmlp.fuse(model)
    with torch.no_grad():
        expected = fused(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fused(x)
            cached = fused.blocks[0].channel_mix._casts[torch.bfloat16]
            again = fused(x)
        assert fused.blocks[0].channel_mix._casts[torch.bfloat16] is cached  # cast once per dtype, then reused
    assert out.dtype == torch.bfloat16 and all(t.dtype == torch.bfloat16 for t in cached)
    assert_rel_close(out, expected, 3e-2)
    assert torch.equal(out, again)
    # Moving or loading the module drops the casts, so they never go stale.
    fused.to(torch.float32)
    assert fused.blocks[0].channel_mix._casts == {}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fused(x)
    fused.load_state_dict(resmlp.fuse(randomise(create_model("resmlp_mini"), seed=5)).state_dict())
    assert fused.blocks[0].channel_mix._casts == {}


def test_fused_under_torch_compile():
    model = randomise(create_model("resmlp_tiny")).eval()
    x = images(model, 2)
    fused = resmlp.fuse(model)
    with torch.no_grad():
        assert_rel_close(torch.compile(fused)(x), reference_forward(model, x), 1e-4)


def test_fuse_of_a_bf16_model_folds_in_fp32():
    model = randomise(create_model("resmlp_tiny")).eval()
    x = images(model, 2)
    fused = resmlp.fuse(model.to(torch.bfloat16))
    assert fused.blocks[0].channel_mix.fc1_weight.dtype == torch.bfloat16
    with torch.no_grad():
        out = fused(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert_rel_close(out, reference_forward(model.float(), x), 5e-2)


def test_fuse_rejects_other_modules():
    with pytest.raises(TypeError, match="resmlp.ResMLP"):
        resmlp.fuse(torch.nn.Linear(3, 3))


def test_training_path_equals_reference_forward_and_gradients():
    model = randomise(create_model("resmlp_mini")).train()
    x = images(model, 3)
    fast = model(x)
    fast.square().mean().backward()
    fast_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    slow = reference_forward(model, x)
    slow.square().mean().backward()
    assert_rel_close(fast, slow, 1e-5)
    for name, p in model.named_parameters():
        assert_rel_close(fast_grads[name], p.grad, 1e-4)


def test_training_path_drop_path_draws_the_same_masks():
    model = randomise(create_model("resmlp_tiny", drop_path_rate=0.5)).train()
    x = images(model, 8)
    torch.manual_seed(3)
    fast = model(x)
    torch.manual_seed(3)
    slow = reference_forward(model, x)
    assert_rel_close(fast, slow, 1e-5)
    torch.manual_seed(4)
    assert not torch.allclose(model(x), fast)  # the masks are really random


@pytest.mark.filterwarnings("ignore:TF32 acceleration")  # printed by torch.backends.mkldnn.flags on CPU builds
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_onednn_products_match_torch_forward_and_backward(dtype):
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(s, generator=gen, dtype=dtype) for s in [(10, 6), (7, 6), (7,)])
    r, a, v, q = (torch.randn(s, generator=gen, dtype=dtype) for s in [(10, 7), (4, 5), (5, 9), (4, 9)])

    def run(fn, *inputs):
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = fn(*leaves)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out))
        return [out] + [t.grad for t in leaves]

    cases = [
        (lambda x, w, b: linear(x, w, b), (x, w, b)),
        (lambda x, w, b: linear(x, w, b, gelu=True), (x, w, b)),
        (lambda x, w, b, r: linear(x, w, b, residual=r), (x, w, b, r)),
        (lambda a, v: left_matmul(a, v), (a, v)),
        (lambda a, v, q: left_matmul(a, v, residual=q), (a, v, q)),
    ]
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for fn, inputs in cases:
        fast = run(fn, *inputs)
        with torch.backends.mkldnn.flags(enabled=False):
            plain = run(fn, *inputs)
        for got, want in zip(fast, plain):
            assert got.dtype == dtype
            assert_rel_close(got, want, tol)
    with pytest.raises(ValueError, match="either gelu or a residual"):
        linear(x, w, b, gelu=True, residual=r)


def test_macs_are_counted_on_a_cpu_model_too():
    model = create_model("resmlp_tiny")
    _, meta_macs = model_stats("resmlp_tiny")
    assert count_macs(model, (1, 3, 16, 16)) == meta_macs > 0


def test_chunked_inference_mlp_matches_plain_formulation(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=gen)
    w1, b1, w2, b2 = (torch.randn(s, generator=gen) for s in [(32, 8), (32,), (8, 32), (8,)])
    expected = x + torch.nn.functional.linear(torch.nn.functional.gelu(torch.nn.functional.linear(x, w1, b1)), w2, b2)
    # 64 rows per chunk: four full chunks and a ragged one of 44 rows.
    monkeypatch.setattr(gemm, "MLP_CHUNK_BYTES", 64 * 32 * 4)
    with torch.no_grad():
        out = gemm.mlp_residual_(x.clone(), w1, b1, w2, b2)
    assert_rel_close(out, expected, 1e-5)
    with pytest.raises(RuntimeError, match="gradients disabled"):
        gemm.mlp_residual_(x.clone().requires_grad_(), w1, b1, w2, b2)
