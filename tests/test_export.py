"""Leaving PyTorch: TorchScript, torch.fx, torch.export and ONNX (run by onnxruntime) on every preset."""

import warnings

import pytest
import torch
from test_fuse import randomise
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import resmlp
from resmlp import create_model
from resmlp.export import main as export_main

onnxruntime = pytest.importorskip("onnxruntime")


def small(name: str) -> resmlp.ResMLP:
    """The preset at a 2 x 2 token grid: every layer of the real architecture, at a fraction of the cost."""
    patch = resmlp.get_config(name).patch_size
    return randomise(create_model(name, img_size=2 * patch)).eval()


def example(model: resmlp.ResMLP, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, model.config.in_chans, *model.config.image_hw)


def close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", resmlp.list_models())
def test_every_preset_scripts_traces_and_exports(name):
    model = small(name)
    x = example(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(x)
        close(torch.jit.script(model)(x), expected)
        close(torch.jit.trace(model, x, check_trace=False)(x), expected)
        close(torch.fx.symbolic_trace(model)(x), expected)
        close(torch.export.export(model, (x,)).module()(x), expected)


def test_s12_at_224_through_every_exporter(tmp_path):
    model = randomise(create_model("resmlp_s12")).eval()
    x = example(model, 1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(x)
        scripted = torch.jit.script(model)
        scripted.save(str(tmp_path / "s12.pt"))
        close(torch.jit.load(str(tmp_path / "s12.pt"))(x), expected)
        close(torch.fx.symbolic_trace(model)(x), expected)
        close(torch.export.export(model, (x,)).module()(x), expected)
    path = resmlp.export.export_onnx(model, x, tmp_path / "s12.onnx")
    assert resmlp.export.onnxruntime_max_difference(path, model, x) < 1e-4


def test_torchvision_feature_extraction_on_the_fx_graph():
    model = small("resmlp_s12")
    _, eval_nodes = get_graph_node_names(model)
    assert "blocks.5.channel_mix.add" in eval_nodes  # the graph is the readable formulation, block by block
    extractor = create_feature_extractor(model, return_nodes={"blocks.5": "mid", "norm": "final"})
    x = example(model)
    with torch.no_grad():
        feats = extractor(x)
        close(feats["final"], model.forward_features(x))
        _, (mid,) = model.forward_intermediates(x, indices=[5], output_fmt="NLC")
        close(feats["mid"], mid)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
def test_onnx_runs_in_onnxruntime_with_a_dynamic_batch(tmp_path, dynamo):
    pytest.importorskip("onnxscript")
    model = randomise(create_model("resmlp_tiny")).eval()
    path = resmlp.export.export_onnx(model, example(model, 2), tmp_path / "tiny.onnx", dynamo=dynamo)
    for batch in (1, 5):
        assert resmlp.export.onnxruntime_max_difference(path, model, example(model, batch)) < 1e-4


def test_export_command_writes_onnx_and_torchscript_from_a_checkpoint(tmp_path, capsys):
    model = randomise(create_model("resmlp_tiny"))
    resmlp.save_model(model, tmp_path / "tiny.pth")
    args = ["--model", "resmlp_tiny", "--checkpoint", str(tmp_path / "tiny.pth"), "--out", str(tmp_path / "t.onnx")]
    assert export_main([*args, "--torchscript", str(tmp_path / "t.pt")]) == 0
    assert "onnxruntime max |diff|" in capsys.readouterr().out
    x = example(model)
    with torch.no_grad():
        close(torch.jit.load(str(tmp_path / "t.pt"))(x), model.eval()(x))
    assert resmlp.export.onnxruntime_max_difference(tmp_path / "t.onnx", model, x) < 1e-4


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "resmlp_s13", "--out", "x.onnx"], "unknown preset 'resmlp_s13'"),
        (["--model", "resmlp_tiny", "--checkpoint", "missing.pth", "--out", "x.onnx"], "checkpoint not found"),
        (["--model", "resmlp_tiny", "--out", "/nonexistent/dir/x.onnx"], "read-only"),
    ],
)
def test_export_command_refuses_bad_input_in_one_line(args, message, capsys):
    from resmlp.cli import run_main

    with pytest.raises(SystemExit) as exit_info:
        run_main(export_main, args, prog="resmlp.export")
    err = capsys.readouterr().err
    assert exit_info.value.code in (1, 2) and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
