"""The small-scale ablation sweep runs end to end at toy size: one row per variant in the table, the JSON and the
plot written, a variant's row kept as soon as it finishes, and ``--reuse`` keeping finished rows without training."""

import json

from bench import ablations


def test_sweep_writes_table_json_plot_and_reuses_finished_rows(tmp_path):
    common = ["--train-size", "64", "--threads", "1", "--out-dir", str(tmp_path)]
    args = ["--epochs", "1", *common, "--only", "linear (paper)", "mixer: none"]
    rows = ablations.main(args)
    assert [r["variant"] for r in rows] == ["linear (paper)", "mixer: none"]
    assert rows[1]["fields"] == {"token_mixer": "none"} and rows[1]["params"] < rows[0]["params"]
    table = (tmp_path / "ablations.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| linear (paper) |") and table[3].startswith("| mixer: none |")
    assert json.loads((tmp_path / "ablations.json").read_text())["rows"] == rows
    assert (tmp_path / "ablations.png").stat().st_size > 0
    assert json.loads((tmp_path / "rows" / "mixer_none.json").read_text()) == rows[1]

    model = tmp_path / "runs" / "paper" / "model.pth"
    trained_at = model.stat().st_mtime_ns
    assert ablations.main([*args, "--reuse"]) == rows
    assert model.stat().st_mtime_ns == trained_at  # nothing was trained again

    rows_other_budget = ablations.main(["--epochs", "2", *common, "--reuse", "--only", "mixer: none"])
    assert rows_other_budget[0]["epochs"] == 2  # a row of another budget is not reused
