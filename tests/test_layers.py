"""Unit tests of each ResMLP layer."""

import pytest
import torch

from resmlp.config import drop_path_rates, layerscale_init_for_depth
from resmlp.layers import (
    Affine,
    ChannelMLP,
    CrossPatchLinear,
    DropPath,
    LayerScale,
    PatchEmbed,
    PreAffineResidual,
    ResMLPBlock,
)


def test_affine_is_identity_at_init_and_per_channel():
    aff = Affine(8)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(aff(x), x)
    with torch.no_grad():
        aff.alpha.copy_(torch.arange(8.0))
        aff.beta.fill_(1.0)
    torch.testing.assert_close(aff(x), x * torch.arange(8.0) + 1.0)
    assert aff.alpha.shape == (8,) and aff.beta.shape == (8,)


@pytest.mark.parametrize(
    "depth,expected", [(1, 0.1), (12, 0.1), (18, 0.1), (19, 1e-5), (24, 1e-5), (25, 1e-6), (36, 1e-6)]
)
def test_layerscale_init_follows_total_depth(depth, expected):
    assert layerscale_init_for_depth(depth) == expected


def test_layerscale_holds_its_init_value():
    ls = LayerScale(6, 1e-5)
    torch.testing.assert_close(ls.gamma, torch.full((6,), 1e-5))
    x = torch.randn(3, 6)
    torch.testing.assert_close(ls(x), x * 1e-5)
    with torch.no_grad():
        ls.gamma.zero_()
    ls.reset_parameters()
    torch.testing.assert_close(ls.gamma, torch.full((6,), 1e-5))


def test_cross_patch_mixes_only_along_tokens():
    mix = CrossPatchLinear(5)
    x = torch.randn(2, 5, 7)
    out = mix(x)
    expected = torch.einsum("nm,bmc->bnc", mix.weight, x) + mix.bias[None, :, None]
    torch.testing.assert_close(out, expected)
    # Changing one channel changes only that channel of the output: channels never mix.
    x2 = x.clone()
    x2[:, :, 3] += 1.0
    diff = (mix(x2) - out).abs().sum(dim=(0, 1))
    assert diff[3] > 0 and torch.all(diff[torch.arange(7) != 3] == 0)


def test_cross_patch_causal_never_reads_later_positions():
    mix = CrossPatchLinear(6, causal=True)
    x = torch.randn(2, 6, 4)
    out = mix(x)
    for t in range(6):
        x2 = x.clone()
        x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :])
        torch.testing.assert_close(mix(x2)[:, : t + 1], out[:, : t + 1])
    # The gradient never reaches the upper triangle.
    out.sum().backward()
    assert torch.all(mix.weight.grad.triu(1) == 0)


def test_cross_patch_sliced_input_equals_full_matrix_on_prefix():
    causal = CrossPatchLinear(8, causal=True)
    x = torch.randn(3, 8, 4)
    torch.testing.assert_close(causal(x[:, :5]), causal(x)[:, :5])
    plain = CrossPatchLinear(8)
    padded = torch.cat([x[:, :5], torch.zeros(3, 3, 4)], dim=1)
    torch.testing.assert_close(plain(x[:, :5]), plain(padded)[:, :5])


def test_cross_patch_rejects_too_long_input():
    with pytest.raises(ValueError, match="at most 4"):
        CrossPatchLinear(4)(torch.randn(1, 5, 2))


def test_cross_patch_other_ranks():
    mix = CrossPatchLinear(4)
    x = torch.randn(4, 3)
    torch.testing.assert_close(mix(x), mix.weight @ x + mix.bias[:, None])


def test_channel_mlp_shapes_and_gelu():
    mlp = ChannelMLP(4, 16)
    assert mlp.fc1.weight.shape == (16, 4) and mlp.fc2.weight.shape == (4, 16)
    x = torch.randn(2, 3, 4)
    expected = mlp.fc2(torch.nn.functional.gelu(mlp.fc1(x)))
    torch.testing.assert_close(mlp(x), expected)


def test_drop_path_train_and_eval():
    dp = DropPath(0.5)
    x = torch.ones(1000, 3)
    dp.eval()
    assert torch.equal(dp(x), x)
    dp.train()
    out = dp(x)
    kept = out[:, 0] != 0
    assert 0.35 < kept.float().mean() < 0.65
    # Whole samples are dropped and survivors rescaled by 1 / keep_prob.
    assert torch.all(out[kept] == 2.0) and torch.all(out[~kept] == 0.0)
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_drop_path_rates_schedules():
    assert drop_path_rates(0.1, 4) == [0.1] * 4
    assert drop_path_rates(0.3, 4, "linear") == pytest.approx([0.0, 0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="uniform"):
        drop_path_rates(0.1, 4, "cosine")


def test_patch_embed_matches_conv_and_names_expected_size():
    pe = PatchEmbed((8, 12), 4, 3, 5)
    x = torch.randn(2, 3, 8, 12)
    conv = pe.proj(x).flatten(2).transpose(1, 2)  # the official conv formulation, row-major tokens
    torch.testing.assert_close(pe(x), conv, rtol=1e-5, atol=1e-5)
    assert pe.num_patches == 6
    with pytest.raises(ValueError, match="8x12"):
        pe(torch.randn(2, 3, 12, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, 8, 12\)"):
        pe(torch.randn(2, 1, 8, 12))


def test_residual_sublayer_order():
    torch.manual_seed(0)
    op = torch.nn.Linear(4, 4)
    res = PreAffineResidual(4, op, layerscale_init=0.5)
    with torch.no_grad():
        res.norm.alpha.fill_(2.0)
        res.norm.beta.fill_(0.1)
    x = torch.randn(3, 4)
    torch.testing.assert_close(res(x), x + 0.5 * op(2.0 * x + 0.1))


def test_block_is_token_then_channel_mixing():
    block = ResMLPBlock(8, 5, 32, layerscale_init=0.1)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(block(x), block.channel_mix(block.token_mix(x)))
    assert block.token_mix.op.num_tokens == 5 and block.channel_mix.op.fc1.out_features == 32
