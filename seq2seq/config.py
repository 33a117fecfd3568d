"""The typed configuration of the seq2seq ResMLP: one dataclass, fairseq's transformer flag names where they mean
the same thing, and its conversion from whatever fairseq hands the model (argparse Namespace or DictConfig)."""

# No `from __future__ import annotations`: fairseq reads the field types at runtime.
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fairseq.dataclass import ChoiceEnum, FairseqDataclass

SUBLAYER_NORM_CHOICES = ChoiceEnum(["affine", "layernorm"])
POSITIONAL_EMBEDDING_CHOICES = ChoiceEnum(["none", "sinusoidal", "learned"])


@dataclass
class ResMLPSeq2SeqConfig(FairseqDataclass):
    """Every option of the ``resmlp`` model. The defaults are the paper's ResMLP-6 for WMT14 en-de.

    Field names follow fairseq's ``TransformerConfig`` (``--encoder-embed-dim``, ``--dropout``, ...) so a
    transformer command line carries over. Self-attention options (``--encoder-attention-heads``, ...) do not
    exist here because there is no self-attention; ``--decoder-attention-heads`` sizes the cross-attention.
    """

    encoder_embed_dim: int = field(default=512, metadata={"help": "encoder embedding dimension"})
    encoder_ffn_embed_dim: int = field(default=2048, metadata={"help": "encoder channel-MLP hidden dimension"})
    encoder_layers: int = field(default=6, metadata={"help": "number of encoder layers"})
    decoder_embed_dim: int = field(default=512, metadata={"help": "decoder embedding dimension"})
    decoder_ffn_embed_dim: int = field(default=2048, metadata={"help": "decoder channel-MLP hidden dimension"})
    decoder_layers: int = field(default=6, metadata={"help": "number of decoder layers"})
    decoder_attention_heads: int = field(
        default=8, metadata={"help": "heads of the encoder-decoder attention (the only attention in the model)"}
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout on embeddings and on every sublayer's output"})
    attention_dropout: float = field(default=0.0, metadata={"help": "dropout on cross-attention weights"})
    share_decoder_input_output_embed: bool = field(
        default=False, metadata={"help": "share decoder input and output embeddings"}
    )
    share_all_embeddings: bool = field(
        default=False,
        metadata={"help": "share encoder, decoder and output embeddings (needs a joined dictionary)"},
    )
    no_scale_embedding: bool = field(default=False, metadata={"help": "do not scale embeddings by sqrt(dim)"})
    # The token-mixing matrix is N x N with N the longest allowed sentence: the paper does not give N. 256
    # sentencepiece tokens covers the usual WMT length filter (250 words before BPE is rarely exceeded after
    # cleaning) at 65k parameters per layer; longer inputs are filtered by fairseq with its usual message.
    max_source_positions: int = field(
        default=256, metadata={"help": "longest source (tokens, with EOS): the encoder token-mixing size"}
    )
    max_target_positions: int = field(
        default=256, metadata={"help": "longest target (tokens, with EOS): the decoder token-mixing size"}
    )
    # The token-mixing matrix already depends on absolute position, so the ResMLP default is no positional
    # embedding; the paper does not say, so the transformer's kinds remain available.
    positional_embeddings: POSITIONAL_EMBEDDING_CHOICES = field(  # type: ignore[valid-type]
        default="none",
        metadata={"help": "positional embeddings added to token embeddings (paper: unspecified; default none)"},
    )
    sublayer_norm: SUBLAYER_NORM_CHOICES = field(  # type: ignore[valid-type]
        default="affine",
        metadata={"help": "pre-normalisation of every sublayer: ResMLP's Affine (default) or LayerNorm"},
    )
    layerscale_init: float = field(default=0.2, metadata={"help": "LayerScale init of every residual branch"})
    drop_path: float = field(default=0.0, metadata={"help": "stochastic depth rate of every residual branch"})

    def validate(self, *, joined_dictionary: bool) -> None:
        """Raise ``ValueError`` naming the bad option and how to fix it."""
        for name in ("encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_layers", "decoder_embed_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("decoder_ffn_embed_dim", "decoder_layers", "max_source_positions", "max_target_positions"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.decoder_embed_dim % self.decoder_attention_heads != 0:
            raise ValueError(
                f"--decoder-embed-dim ({self.decoder_embed_dim}) must be divisible by --decoder-attention-heads "
                f"({self.decoder_attention_heads}); pick a head count that divides it"
            )
        if self.share_all_embeddings:
            if not joined_dictionary:
                raise ValueError(
                    "--share-all-embeddings needs one dictionary for both languages; binarise with "
                    "fairseq-preprocess --joined-dictionary (the seq2seq.prepare command does)"
                )
            if self.encoder_embed_dim != self.decoder_embed_dim:
                raise ValueError(
                    "--share-all-embeddings needs --encoder-embed-dim equal to --decoder-embed-dim, got "
                    f"{self.encoder_embed_dim} and {self.decoder_embed_dim}"
                )
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"--drop-path must be in [0, 1), got {self.drop_path}")


def resolve_config(cfg: Any) -> ResMLPSeq2SeqConfig:
    """Build the typed config from fairseq's ``cfg.model`` (Namespace or DictConfig), filling missing fields.

    fairseq-hydra-train hands the model only the keys a recipe wrote (the plugin is imported after hydra composes
    the config), and old checkpoints may lack newer fields; both get the dataclass defaults here.
    """
    values = {}
    for f in dataclasses.fields(ResMLPSeq2SeqConfig):
        if f.name.startswith("_"):
            continue
        value = cfg.get(f.name, None) if hasattr(cfg, "get") else getattr(cfg, f.name, None)
        if value is not None:
            # ChoiceEnum values arrive as enum members from structured configs and as str from argparse.
            values[f.name] = value.value if hasattr(value, "value") else value
    return ResMLPSeq2SeqConfig(**values)
