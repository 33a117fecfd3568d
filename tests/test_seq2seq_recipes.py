"""Every recipe shipped with the plugin (seq2seq/recipes) composes the way fairseq-hydra-train composes it, builds
its model with the named preset, and builds its optimiser and learning-rate schedule (the training runs are in
test_seq2seq_cli and test_seq2seq_launcher)."""

from pathlib import Path

import pytest
import torch

pytest.importorskip("fairseq")

from fairseq import models as fairseq_models  # noqa: E402
from fairseq.data import Dictionary  # noqa: E402
from fairseq.dataclass.initialize import add_defaults, hydra_init  # noqa: E402
from fairseq.optim import build_optimizer  # noqa: E402
from fairseq.optim.lr_scheduler import build_lr_scheduler  # noqa: E402
from fairseq.tasks.translation import TranslationConfig, TranslationTask  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from seq2seq.user_dir import recipes_dir  # noqa: E402

# fairseq's hydra set-up relies on hydra 1.1's schema matching, which hydra 1.3 warns about on every compose.
pytestmark = pytest.mark.filterwarnings(r"ignore:\s*'\w+' is validated against ConfigStore schema")
RECIPES = Path(recipes_dir())
# recipe -> (preset, layers per side, FFN width, optimiser class)
EXPECTED = {
    "synthetic_tiny": ("resmlp_tiny", 2, 64, "Adam"),
    "iwslt14_de_en": ("resmlp_iwslt_de_en", 6, 1024, "Adam"),
    "wmt14_en_de_resmlp6": ("resmlp_wmt_en_de", 6, 2048, "Adagrad"),
    "wmt14_en_de_resmlp12": ("resmlp_wmt_en_de_12", 12, 2048, "Adagrad"),
}


@pytest.fixture(scope="session")
def plugin():
    """Import (and so register) the plugin once per session: fairseq refuses a second registration."""
    import seq2seq

    return seq2seq


def compose_like_fairseq_hydra_train(name: str):
    """hydra composition with fairseq's schema, then the plugin-aware defaults and resolution fairseq applies."""
    hydra_init(name)
    # version_base 1.1: fairseq's @hydra.main sets none, which means hydra 1.1 behaviour.
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.1"):
        cfg = compose(config_name=name, overrides=["task.data=/nonexistent", "common.user_dir=unused"])
    add_defaults(cfg)
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def test_every_recipe_is_checked():
    assert sorted(p.stem for p in RECIPES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_builds_its_model_optimizer_and_schedule(plugin, name):
    preset, layers, ffn, optimizer_name = EXPECTED[name]
    cfg = compose_like_fairseq_hydra_train(name)
    assert cfg.model._name == preset

    dictionary = Dictionary()
    for index in range(16):
        dictionary.add_symbol(f"w{index}")
    task = TranslationTask(TranslationConfig(), dictionary, dictionary)
    model = fairseq_models.build_model(cfg.model, task)
    assert isinstance(model, plugin.ResMLPSeq2SeqModel)
    assert len(model.encoder.layers) == len(model.decoder.layers) == layers
    assert model.encoder.layers[0].channel_mlp.op.fc1.out_features == ffn
    assert model.max_positions() == (cfg.task.max_source_positions, cfg.task.max_target_positions)

    optimizer = build_optimizer(cfg.optimizer, list(model.parameters()))
    assert type(optimizer.optimizer).__name__ == optimizer_name
    scheduler = build_lr_scheduler(cfg.lr_scheduler, optimizer)
    scheduler.step_update(cfg.lr_scheduler.warmup_updates)
    torch.testing.assert_close(optimizer.get_lr(), cfg.optimization.lr[0])  # the recipe's peak, after warmup
