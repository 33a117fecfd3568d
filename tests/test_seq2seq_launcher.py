"""``resmlp-fairseq``: every fairseq tool with the plugin loaded, so ``--user-dir`` cannot be forgotten; the shipped
recipes are found from any folder; and where fairseq alone would fail obscurely, one clear line."""

import subprocess
from pathlib import Path

import pytest
import torch

pytest.importorskip("fairseq")

from seq2seq_helpers import LANGS, TEST_SENTENCES, TRAIN_FLAGS, session_base, tool_environment  # noqa: E402
from seq2seq_helpers import data_dir as prepared_data  # noqa: E402
from seq2seq_helpers import trained as trained_run  # noqa: E402

from bench.fairseq_runs import fairseq_tool, generation_speed, json_records, run_tool  # noqa: E402
from seq2seq import launcher  # noqa: E402
from seq2seq.user_dir import plugin_dir, recipes_dir  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def environment():
    with pytest.MonkeyPatch.context() as patch:
        tool_environment(patch)
        patch.delenv("RESMLP_FAIRSEQ_USER_DIR", raising=False)
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return prepared_data(session_base(tmp_path_factory))


@pytest.fixture(scope="module")
def checkpoint(data_dir, tmp_path_factory):
    return trained_run(session_base(tmp_path_factory))[0] / "checkpoint_best.pt"


def test_train_without_user_dir_records_the_plugin(data_dir, tmp_path):
    args = ["train", data_dir, *TRAIN_FLAGS, "--max-update", 2, "--save-dir", tmp_path, "--no-last-checkpoints"]
    result = run_tool("resmlp-fairseq", args, cwd=tmp_path)
    assert len(json_records(result.stdout + result.stderr, "train_inner")) == 2
    state = torch.load(tmp_path / "checkpoint_best.pt", weights_only=True)
    assert state["cfg"]["common"]["user_dir"] == plugin_dir() and state["cfg"]["model"]["_name"] == "resmlp_tiny"


def test_generate_validate_and_interactive_without_user_dir(data_dir, checkpoint, tmp_path):
    common = [data_dir, "--path", checkpoint, *LANGS, "--required-batch-size-multiple", "1", "--num-workers", "0"]
    generated = run_tool("resmlp-fairseq", ["generate", *common, "--beam", "2", "--batch-size", "64"], cwd=tmp_path)
    assert generation_speed(generated.stdout + generated.stderr).sentences == TEST_SENTENCES

    validate = ["validate", *common, "--task", "translation", "--valid-subset", "test", "--batch-size", "64"]
    validated = run_tool("resmlp-fairseq", validate)
    assert "| valid on 'test' subset | loss" in validated.stdout + validated.stderr

    lines = "the big dog sees a cat\nsome kings like the river\n"
    bpe = ["--bpe", "sentencepiece", "--sentencepiece-model", data_dir / "spm.model"]
    interactive = run_tool("resmlp-fairseq", ["interactive", *common, *bpe], input_text=lines, cwd=tmp_path)
    assert [line.split("\t")[0] for line in interactive.stdout.splitlines() if line.startswith("H-")] == ["H-0", "H-1"]


def test_hydra_train_finds_the_shipped_recipe_from_any_folder(data_dir, tmp_path):
    overrides = [f"task.data={data_dir}", f"checkpoint.save_dir={tmp_path / 'ckpt'}", "optimization.max_update=2"]
    result = run_tool("resmlp-fairseq", ["hydra-train", "--config-name", "synthetic_tiny", *overrides], cwd=tmp_path)
    assert "done training" in result.stdout + result.stderr
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=True)
    assert state["cfg"]["common"]["user_dir"] == plugin_dir()


def test_plain_hydra_train_without_the_plugin_names_what_is_missing(data_dir, tmp_path):
    args = ["--config-dir", recipes_dir(), "--config-name", "synthetic_tiny", f"task.data={data_dir}"]
    result = run_tool("fairseq-hydra-train", args, cwd=tmp_path, check=False)
    # fairseq alone would reach its model registry and fail with KeyError: "'_name'".
    assert "Environment variable 'RESMLP_FAIRSEQ_USER_DIR' not found" in result.stderr
    assert "full_key: common.user_dir" in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_another_copy_of_the_plugin_is_refused_in_one_line(tmp_path, capsys):
    stale = tmp_path / "seq2seq"
    stale.mkdir()
    assert launcher.main(["generate", "data-bin", "--user-dir", str(stale), "--path", "x.pt"]) == 2
    assert launcher.main(["hydra-train", "--config-name", "synthetic_tiny", f"common.user_dir={stale}"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all("is another copy of the seq2seq plugin" in line for line in errors)
    assert launcher.main(["translate"]) == 2
    assert "unknown command 'translate'" in capsys.readouterr().err


def test_the_launcher_adds_only_what_is_missing():
    assert launcher.with_plugin("train", ["data"]) == ["--user-dir", plugin_dir(), "data"]
    given = ["data", f"--user-dir={plugin_dir()}"]
    assert launcher.with_plugin("train", given) == given
    assert launcher.with_plugin("preprocess", ["--source-lang", "de"]) == ["--source-lang", "de"]
    hydra = launcher.with_plugin("hydra-train", ["--config-dir", "mine", "--config-name", "r"])
    assert hydra == ["--config-dir", "mine", "--config-name", "r", f"common.user_dir={plugin_dir()}"]
    hydra = launcher.with_plugin("hydra-train", ["--config-name", "r", "task.data=d"])
    assert hydra == [
        "--config-dir",
        recipes_dir(),
        "--config-name",
        "r",
        "task.data=d",
        f"common.user_dir={plugin_dir()}",
    ]


def test_the_plugin_and_recipe_folders_are_printed(tmp_path, capsys):
    command = [*fairseq_tool("resmlp-fairseq"), "user-dir"]
    printed = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=True).stdout.strip()
    assert printed == plugin_dir() and (Path(printed) / "__init__.py").is_file()
    assert launcher.main(["recipe-dir"]) == 0
    assert capsys.readouterr().out.strip() == recipes_dir()
    assert sorted(p.name for p in Path(recipes_dir()).glob("*.yaml")) == [
        "iwslt14_de_en.yaml",
        "synthetic_tiny.yaml",
        "wmt14_en_de_resmlp12.yaml",
        "wmt14_en_de_resmlp6.yaml",
    ]
