"""resmlp.viz: token-mixing rows, sparsity, the figure and the resmlp-viz command line."""

import json
import subprocess
import sys

import pytest
import torch

import resmlp
from resmlp.viz import central_patches, layer_sparsity, main, plot_model, sparsity, token_mixing_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _known_matrix(num_tokens: int) -> torch.Tensor:
    """A matrix whose every entry is distinct, so a wrong row or a transposed reshape cannot go unnoticed."""
    return torch.arange(num_tokens * num_tokens, dtype=torch.float32).reshape(num_tokens, num_tokens)


def _assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC


def test_sparsity_of_hand_computed_matrix():
    # max |w| = 10, so the 5% threshold is 0.5: 0.0, 0.1, -0.4 are below it; 0.5, -0.6, 10 are not.
    weight = torch.tensor([[0.0, 0.1, -0.4], [0.5, -0.6, 10.0]])
    assert sparsity(weight) == pytest.approx(3 / 6)
    # At 10% (below 1.0) 0.5 and -0.6 join them.
    assert sparsity(weight, threshold=0.1) == pytest.approx(5 / 6)
    # The largest magnitude may be negative.
    assert sparsity(-weight) == pytest.approx(3 / 6)


def test_sparsity_edge_cases():
    assert sparsity(torch.zeros(3, 3)) == 1.0
    with pytest.raises(ValueError, match="threshold"):
        sparsity(torch.ones(2, 2), threshold=0.0)
    with pytest.raises(ValueError, match="empty"):
        sparsity(torch.ones(0, 3))


def test_central_patches_square_and_clipped():
    # 6x6 grid, central 2x2: patches (2,2) (2,3) (3,2) (3,3).
    assert central_patches((6, 6), 2) == ([14, 15, 20, 21], 2, 2)
    # 3x5 grid, central 4 shrinks to 3 rows: rows 0..2, columns 0..3.
    indices, block_rows, block_cols = central_patches((3, 5), 4)
    assert (block_rows, block_cols) == (3, 4)
    assert indices == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13]


@pytest.mark.parametrize("img_size", [16, (8, 16)])
def test_token_mixing_rows_are_rows_of_a_reshaped_to_the_grid(img_size):
    model = resmlp.create_model("resmlp_tiny", img_size=img_size)
    rows, cols = model.config.grid_size
    matrix = _known_matrix(rows * cols)
    with torch.no_grad():
        model.blocks[1].token_mix.op.weight.copy_(matrix)
    images = token_mixing_rows(model, 1, central=2)
    patches, _, _ = central_patches((rows, cols), 2)
    assert images.shape == (4, rows, cols)
    for i, patch in enumerate(patches):
        torch.testing.assert_close(images[i], matrix[patch].reshape(rows, cols))
    # The top-left central patch of a 4-column grid: row 1 (of 4) or 0 (of 2), column 1.
    assert patches[0] == (rows - 2) // 2 * cols + 1
    # Negative indices count from the end; the other layer is not the known matrix.
    torch.testing.assert_close(token_mixing_rows(model, -1, central=2), images)
    assert not torch.equal(token_mixing_rows(model, 0, central=2), images)


def test_token_mixing_rows_rejects_missing_layer():
    model = resmlp.create_model("resmlp_tiny")
    with pytest.raises(IndexError, match="2 layers"):
        token_mixing_rows(model, 2)


def test_layer_sparsity_reads_each_matrix():
    model = resmlp.create_model("resmlp_tiny")
    with torch.no_grad():
        model.blocks[0].token_mix.op.weight.zero_()  # fully sparse
        model.blocks[1].channel_mix.op.fc2.weight.fill_(1.0)  # not sparse at all
    result = layer_sparsity(model, threshold=0.05)
    assert set(result) == {"token_mixing", "mlp_fc1", "mlp_fc2"}
    assert all(len(values) == 2 for values in result.values())
    assert result["token_mixing"][0] == 1.0
    assert result["mlp_fc2"][1] == 0.0
    assert result["mlp_fc1"][0] == sparsity(model.blocks[0].channel_mix.op.fc1.weight)


def test_plot_model_writes_png(tmp_path):
    model = resmlp.create_model("resmlp_tiny", img_size=(8, 16))  # non-square grid
    out = plot_model(model, tmp_path / "sub" / "fig.png", layers=[0, -1], central=6, title="tiny")
    assert out == tmp_path / "sub" / "fig.png"
    _assert_png(out)


def test_plot_model_rejects_bad_arguments(tmp_path):
    model = resmlp.create_model("resmlp_tiny")
    with pytest.raises(ValueError, match=".png"):
        plot_model(model, tmp_path / "fig.jpg")
    with pytest.raises(ValueError, match="empty"):
        plot_model(model, tmp_path / "fig.png", layers=[])
    with pytest.raises(IndexError, match="layer 5"):
        plot_model(model, tmp_path / "fig.png", layers=[5])


def test_cli_on_saved_checkpoint(tmp_path):
    model = resmlp.create_model("resmlp_tiny")
    with torch.no_grad():
        model.blocks[0].token_mix.op.weight.zero_()
    checkpoint = resmlp.save_model(model, tmp_path / "tiny.pth")
    out, report = tmp_path / "fig.png", tmp_path / "sparsity.json"
    command = [sys.executable, "-m", "resmlp.viz", "--checkpoint", str(checkpoint), "--out", str(out)]
    result = subprocess.run(
        command + ["--layers", "0,1", "--central", "3", "--sparsity-json", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    _assert_png(out)
    # The checkpoint's own config was used (not the default resmlp_s12), and its weights were loaded.
    data = json.loads(report.read_text())
    assert data["threshold"] == 0.05
    assert data["token_mixing"][0] == 1.0
    assert len(data["mlp_fc1"]) == 2
    assert "tiny.pth" in data["title"]


def test_cli_missing_checkpoint_exits_1(tmp_path, capsys):
    missing = tmp_path / "nope.pth"
    assert main(["--checkpoint", str(missing), "--out", str(tmp_path / "f.png")]) == 1  # a failure, not a usage error
    assert capsys.readouterr().err.splitlines() == [f"resmlp-viz: error: checkpoint file not found: {missing}"]
    assert not (tmp_path / "f.png").exists()


def test_cli_unknown_preset_lists_choices(tmp_path, capsys):
    assert main(["--model", "resmlp_s13", "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'resmlp_s13'" in err
    assert "resmlp_s12" in err and "resmlp_tiny" in err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--layers", "0,7"], "layer 7 does not exist"),
        (["--central", "0"], "--central"),
        (["--threshold", "5"], "--threshold"),
        (["--out", "fig.jpg"], ".png"),
    ],
)
def test_cli_bad_arguments_exit_2(tmp_path, capsys, extra, message):
    argv = ["--model", "resmlp_tiny", "--out", str(tmp_path / "f.png")] + extra
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_random_init_says_so(tmp_path, capsys):
    report = tmp_path / "s.json"
    assert main(["--model", "resmlp_tiny", "--out", str(tmp_path / "f.png"), "--sparsity-json", str(report)]) == 0
    _assert_png(tmp_path / "f.png")
    assert "RANDOM INIT" in json.loads(report.read_text())["title"]


def test_cli_wrong_preset_for_checkpoint_exits_1(tmp_path, capsys):
    checkpoint = resmlp.save_model(resmlp.create_model("resmlp_tiny"), tmp_path / "tiny.pth")
    assert main(["--checkpoint", str(checkpoint), "--model", "resmlp_mini", "--out", str(tmp_path / "f.png")]) == 1
    err = capsys.readouterr().err
    assert "another architecture" in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_file_without_config_needs_its_preset(tmp_path, capsys):
    model = resmlp.create_model("resmlp_tiny")
    with torch.no_grad():
        model.blocks[1].token_mix.op.weight.zero_()
    checkpoint = resmlp.save_model(model, tmp_path / "deit.pth", layout="deit")  # raw state dict, no config
    report = tmp_path / "s.json"
    argv = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "f.png"), "--sparsity-json", str(report)]
    assert main(argv) == 1  # read as the default resmlp_s12, which it is not
    assert "resmlp-viz: error:" in capsys.readouterr().err
    assert main(argv + ["--model", "resmlp_tiny"]) == 0
    assert json.loads(report.read_text())["token_mixing"][1] == 1.0
