"""A ResMLP encoder-decoder for translation, registered as the fairseq model ``resmlp`` (a fairseq ``--user-dir``).

Importing this package registers the model and its ``--arch`` presets with fairseq, and lets ``torch.load``'s
safe mode read fairseq checkpoints; fairseq imports it (before loading any checkpoint) when given
``--user-dir $(resmlp-fairseq user-dir)``, and ``resmlp-fairseq <tool> ...`` runs any fairseq tool with it loaded
(``seq2seq/launcher.py``). The package holds only the plugin; data preparation is in ``seq2seq_data/``, the
comparison with the transformer in ``bench/seq2seq.py`` (docs/seq2seq.md).
"""

from .architectures import ARCHITECTURES
from .config import ResMLPSeq2SeqConfig
from .model import ResMLPSeq2SeqModel
from .safe_checkpoints import allow_fairseq_checkpoint_types

allow_fairseq_checkpoint_types()

__all__ = ["ARCHITECTURES", "ResMLPSeq2SeqConfig", "ResMLPSeq2SeqModel", "allow_fairseq_checkpoint_types"]
