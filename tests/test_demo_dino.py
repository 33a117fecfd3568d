"""The DINO demo stage runs end to end on its shipped recipe (one short epoch) and compares like with like."""

from demo.dino import main


def test_dino_demo_one_epoch_reports_both_knn_figures(tmp_path):
    result = main(["--out-dir", str(tmp_path), "--epochs", "1"])
    assert (tmp_path / "dino_digits" / "model.pth").is_file()
    # Both backbones are evaluated at the recipe's input size; chance on 10 digits is 10%.
    assert 10.0 < result["random_init"] < 100.0 and 10.0 < result["dino"] < 100.0
    assert result["seconds"] > 0
