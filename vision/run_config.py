"""The evaluation settings of the run that wrote a checkpoint, read from that run's ``config.yaml``.

A model trained with ``eval.crop_ratio: 1.0`` and evaluated at the default 0.9 loses accuracy for no reason, so
``vision.evaluate`` starts from the run's own settings: ``config.yaml`` next to ``model.pth`` (or two levels up
from a ``checkpoints/step_N`` folder). The file is read as plain YAML (``yaml.safe_load`` rules, never objects)
and only the keys below are taken; a run of an older version (``data.dataset: folder`` + ``data.root``) is read
too. Everything is optional: a checkpoint without a run folder gets the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit.yaml12 import yaml_load

CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class RunSettings:
    """What a run's ``config.yaml`` says about evaluating its model (None: not in the file).

    Attributes:
        path: The config file read, or None when there is none.
        values: ``crop_ratio``, ``interpolation``, ``dataset``, ``builtin_size``, ``mean``, ``std``,
            ``model_name``, ``img_size`` (only those the file has).
    """

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def find_run_config(checkpoint: str | Path) -> Path | None:
    """``config.yaml`` of the run ``checkpoint`` belongs to: next to it, or the run folder of a step folder."""
    checkpoint = Path(checkpoint)
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    candidates = [folder / CONFIG_FILE]
    if folder.name.startswith("step_") and folder.parent.name == "checkpoints":
        candidates.append(folder.parent.parent / CONFIG_FILE)
    return next((c for c in candidates if c.is_file()), None)


def read_run_settings(checkpoint: str | Path) -> RunSettings:
    """The evaluation settings of ``checkpoint``'s run (empty when it has no run folder)."""
    path = find_run_config(checkpoint)
    if path is None:
        return RunSettings()
    try:
        data = yaml_load(path.read_text())
    except Exception:  # not YAML: treat the checkpoint as one without a run folder
        return RunSettings()
    if not isinstance(data, dict):
        return RunSettings()
    sections = {name: data.get(name) if isinstance(data.get(name), dict) else {} for name in ("eval", "data", "model")}
    values: dict[str, Any] = {}
    for key, (section, name) in {
        "crop_ratio": ("eval", "crop_ratio"),
        "interpolation": ("eval", "interpolation"),
        "dataset": ("data", "dataset"),
        "builtin_size": ("data", "builtin_size"),
        "mean": ("data", "mean"),
        "std": ("data", "std"),
        "model_name": ("model", "name"),
        "img_size": ("model", "img_size"),
    }.items():
        if sections[section].get(name) is not None:
            values[key] = sections[section][name]
    root = sections["data"].get("root")
    if root and values.get("dataset") in ("folder", "imagenetv2", "cifar10", "cifar100"):
        values["dataset"] = f"{values['dataset']}:{root}"  # written before the data grammar
    return RunSettings(path, values) if values else RunSettings()
