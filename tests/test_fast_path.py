"""The CPU fast path (resmlp.fast): chosen in one place, equal to the reference, out of every tracer's way."""

import os
import subprocess
import sys
import warnings

import pytest
import torch
from test_fuse import assert_rel_close, images, randomise

import resmlp
from resmlp import create_model, fast


@pytest.fixture
def fast_calls(monkeypatch):
    """Count how often the model really takes the fast path."""
    calls = []
    original = fast.forward_features

    def counting(model, x):
        calls.append(x.shape)
        return original(model, x)

    monkeypatch.setattr(fast, "forward_features", counting)
    return calls


def test_eager_cpu_fp32_takes_the_fast_path(fast_calls):
    model = create_model("resmlp_tiny").eval()
    model(images(model, 2))
    assert len(fast_calls) == 1


def test_the_switch_turns_it_off(fast_calls):
    model = create_model("resmlp_tiny").eval()
    x = images(model, 2)
    with fast.disabled():
        assert not fast.is_enabled()
        model(x)
    assert fast.is_enabled() and not fast_calls
    fast.set_enabled(False)
    try:
        model(x)
    finally:
        fast.set_enabled(True)
    assert not fast_calls
    code = "import resmlp; print(resmlp.fast.is_enabled())"
    env = dict(os.environ, RESMLP_FAST_PATH="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_steps_aside_for_modified_architectures(fast_calls):
    model = create_model("resmlp_mini").eval()
    model.prune_intermediate_layers(2, prune_norm=True)
    model(images(model, 1))
    assert not fast_calls


@pytest.mark.parametrize("name", ["resmlp_tiny", "resmlp_mini"])
def test_forward_and_gradients_equal_the_reference(name):
    """Training mode with stochastic depth: both paths draw the same per-sample masks in the same order."""
    model = randomise(create_model(name, drop_path_rate=0.2)).train()
    x = images(model, 4)
    results = []
    for enabled in (True, False):
        model.zero_grad()
        torch.manual_seed(7)
        with fast.disabled() if not enabled else torch.enable_grad():
            out = model(x)
        out.square().sum().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (fast_out, fast_grads), (ref_out, ref_grads) = results
    assert_rel_close(fast_out, ref_out, 1e-4)
    for pname, grad in ref_grads.items():
        assert_rel_close(fast_grads[pname], grad, 1e-4)


def test_features_equal_the_reference_in_eval():
    model = randomise(create_model("resmlp_mini")).eval()
    x = images(model, 3)
    with torch.no_grad():
        fast_features = model.forward_features(x)
        with fast.disabled():
            reference = model.forward_features(x)
    assert fast_features.is_contiguous()
    assert_rel_close(fast_features, reference, 1e-5)


def _trace_jit(model, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, x)


@pytest.mark.parametrize(
    "tracer",
    [
        pytest.param(lambda m, x: torch.jit.script(m), id="jit.script"),
        pytest.param(_trace_jit, id="jit.trace"),
        pytest.param(lambda m, x: torch.fx.symbolic_trace(m), id="fx"),
        pytest.param(lambda m, x: torch.export.export(m, (x,)).module(), id="export"),
        pytest.param(lambda m, x: torch.compile(m, backend="eager"), id="compile"),
    ],
)
def test_steps_aside_under_every_tracer(tracer, fast_calls):
    model = create_model("resmlp_tiny").eval()
    x = images(model, 2)
    traced = tracer(model, x)
    fast_calls.clear()
    with torch.no_grad():
        out = traced(x)
        assert not fast_calls, "the traced model must run the reference formulation"
        assert_rel_close(out, model(x), 1e-5)


@pytest.mark.skipif(
    torch.bfloat16 not in resmlp.fast.gemm.onednn_dtypes(), reason="this CPU has no bf16 instructions for oneDNN"
)
def test_bf16_autocast_takes_the_fast_path(fast_calls):
    model = create_model("resmlp_mini").eval()
    x = images(model, 2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        with fast.disabled():
            ref = model(x)
    assert fast_calls and out.dtype == torch.bfloat16
    assert_rel_close(out, ref, 0.05)


def test_forward_intermediates_takes_the_same_path_as_forward_features():
    """timm's tools compare ``forward_intermediates``'s final output with ``forward_features`` exactly."""
    model = randomise(create_model("resmlp_mini")).eval()
    x = images(model, 2)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x, indices=[1, -1])
        assert torch.equal(final, model.forward_features(x))
        with fast.disabled():
            ref_final, ref_maps = model.forward_intermediates(x, indices=[1, -1])
    assert_rel_close(final, ref_final, 1e-5)
    for got, ref in zip(maps, ref_maps):
        assert_rel_close(got, ref, 1e-5)
