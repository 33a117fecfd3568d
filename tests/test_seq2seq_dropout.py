"""The plugin's dropout is fairseq's dropout with a cheaper CPU mask: the same rate, an unbiased output, the same
switches (eval, p = 0, --retain-dropout), reproducible under a seed, and the residual form equal to ``x + drop(b)``."""

import pytest
import torch

pytest.importorskip("fairseq")

from fairseq.modules import FairseqDropout  # noqa: E402

from seq2seq.dropout import CpuFastDropout  # noqa: E402


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drops_at_the_rate_asked_and_scales_the_rest_to_keep_the_mean(p):
    torch.manual_seed(0)
    dropout = CpuFastDropout(p).train()
    x = torch.ones(1000, 1003)  # an element count that is not a multiple of four
    y = dropout(x)
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - p) < 0.002  # 1e6 samples: the standard error is below 5e-4
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-4, atol=0)
    assert abs(y.double().mean().item() - 1.0) < 0.005


def test_every_slice_of_the_random_words_is_used_alike():
    """Each of the four 16-bit slices of a 64-bit draw decides its own element: no position is never dropped."""
    torch.manual_seed(0)
    y = CpuFastDropout(0.2).train()(torch.ones(250000, 4))
    per_slice = (y == 0).double().mean(dim=0)
    assert torch.all((per_slice - 0.2).abs() < 0.005), per_slice


def test_is_a_fairseq_dropout_and_keeps_its_switches():
    dropout = CpuFastDropout(0.3, module_name="ResMLPDecoderLayer")
    assert isinstance(dropout, FairseqDropout)
    x = torch.randn(64, 32)
    assert torch.equal(dropout.eval()(x), x)
    assert torch.equal(CpuFastDropout(0.0).train()(x), x)
    retained = ["ResMLPDecoderLayer"]
    dropout.make_generation_fast_("decoder.layers.0", retain_dropout=True, retain_dropout_modules=retained)
    assert dropout.apply_during_inference and not torch.equal(dropout(x), x)  # Monte-Carlo dropout in eval mode
    assert torch.equal(CpuFastDropout(1.0).train()(x), torch.zeros_like(x))


def test_same_seed_same_mask_and_gradients_flow_through_kept_elements():
    x = torch.randn(16, 8, 32, requires_grad=True)
    dropout = CpuFastDropout(0.25).train()
    torch.manual_seed(3)
    first = dropout(x)
    torch.manual_seed(3)
    second = dropout(x)
    assert torch.equal(first, second)
    first.sum().backward()
    torch.testing.assert_close(x.grad, (first != 0).float() / 0.75)


def test_residual_form_is_the_residual_plus_the_dropped_branch():
    residual, branch = torch.randn(10, 4, 16), torch.randn(10, 4, 16)
    dropout = CpuFastDropout(0.4).train()
    torch.manual_seed(5)
    fused = dropout.add_to(residual, branch)
    torch.manual_seed(5)
    torch.testing.assert_close(fused, residual + dropout(branch))
    assert torch.equal(dropout.eval().add_to(residual, branch), residual + branch)
