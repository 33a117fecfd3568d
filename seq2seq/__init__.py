"""A ResMLP encoder-decoder for translation, registered as the fairseq model ``resmlp`` (used via ``--user-dir``).

Importing this package registers the model and its ``--arch`` presets with fairseq, and lets ``torch.load``'s
safe mode read fairseq checkpoints; fairseq imports it (before loading any checkpoint) when given ``--user-dir``.
"""

from .architectures import ARCHITECTURES
from .config import ResMLPSeq2SeqConfig
from .model import ResMLPSeq2SeqModel
from .safe_checkpoints import allow_fairseq_checkpoint_types

allow_fairseq_checkpoint_types()

__all__ = ["ARCHITECTURES", "ResMLPSeq2SeqConfig", "ResMLPSeq2SeqModel", "allow_fairseq_checkpoint_types"]
