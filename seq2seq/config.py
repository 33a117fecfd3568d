"""The typed configuration of the seq2seq ResMLP and the fairseq-facing options derived from it.

``ResMLPSeq2SeqConfig`` holds every option with its real default (the paper's ResMLP-6). fairseq, however, fills a
model's dataclass defaults into its config *before* an ``--arch`` preset runs when training through
fairseq-hydra-train, which would silently turn ``_name: resmlp_tiny`` into ResMLP-6. So the dataclass registered with
fairseq, ``ResMLPSeq2SeqArgs``, is derived from it with every default ``None`` ("not set"): presets fill what is
unset, and ``resolve_config`` fills the rest from ``ResMLPSeq2SeqConfig``. The same order holds for fairseq-train.

``record_config`` then writes every resolved value back into fairseq's ``cfg.model``, which is what a checkpoint
stores: a checkpoint names every option's effective value and loads the same model whatever the defaults (or the
presets) of a later version of this plugin are.
"""

# No `from __future__ import annotations`: fairseq reads the field types at runtime.
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import DictConfig, open_dict

SUBLAYER_NORM_CHOICES = ChoiceEnum(["affine", "layernorm"])
POSITIONAL_EMBEDDING_CHOICES = ChoiceEnum(["none", "sinusoidal", "learned"])
TOKEN_MIXING_INIT_CHOICES = ChoiceEnum(["trunc_normal", "identity", "mean"])


@dataclass(frozen=True)
class ResMLPSeq2SeqConfig:
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
    # The transformer's --activation-dropout: inside the feed-forward sublayer, after its activation. 0 as there
    # (docs/seq2seq.md, "Dropout"): each dropout draws a random mask as large as the activations, which at small
    # widths costs as much as a matrix product.
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout inside the channel MLP, after the GELU"})
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
    # The paper does not say. The token-mixing matrix already depends on absolute position, but on the built-in
    # pair sinusoidal positions (the transformer's default) train faster at small learning rates
    # (docs/seq2seq.md, "Choices the paper leaves open"), so they are the default; "none" is the pure ResMLP.
    positional_embeddings: POSITIONAL_EMBEDDING_CHOICES = field(  # type: ignore[valid-type]
        default="sinusoidal",
        metadata={"help": "positional embeddings added to token embeddings: sinusoidal, learned or none"},
    )
    sublayer_norm: SUBLAYER_NORM_CHOICES = field(  # type: ignore[valid-type]
        default="affine",
        metadata={"help": "pre-normalisation of every sublayer: ResMLP's Affine (default) or LayerNorm"},
    )
    token_mixing_init: TOKEN_MIXING_INIT_CHOICES = field(  # type: ignore[valid-type]
        default="trunc_normal",
        metadata={"help": "init of the token-mixing matrices: ResMLP's trunc_normal(0.02), identity, or mean"},
    )
    layerscale_init: float = field(default=0.2, metadata={"help": "LayerScale init of every residual branch"})
    drop_path: float = field(default=0.0, metadata={"help": "stochastic depth rate of every residual branch"})
    checkpoint_activations: bool = field(
        default=False,
        metadata={"help": "recompute each layer's activations in the backward pass (fairseq's checkpoint_wrapper)"},
    )
    offload_activations: bool = field(
        default=False,
        metadata={"help": "checkpoint activations and keep the saved inputs on the CPU; sets --checkpoint-activations"},
    )

    def validate(self, *, joined_dictionary: bool) -> None:
        """Raise ``ValueError`` naming the bad option and how to fix it."""
        sizes = ("encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_layers", "decoder_embed_dim")
        sizes += ("decoder_ffn_embed_dim", "decoder_layers", "decoder_attention_heads")
        for name in sizes + ("max_source_positions", "max_target_positions"):
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
                    "fairseq-preprocess --joined-dictionary (python -m seq2seq_data.prepare does)"
                )
            if self.encoder_embed_dim != self.decoder_embed_dim:
                raise ValueError(
                    "--share-all-embeddings needs --encoder-embed-dim equal to --decoder-embed-dim, got "
                    f"{self.encoder_embed_dim} and {self.decoder_embed_dim}"
                )
        choices = {
            "positional_embeddings": POSITIONAL_EMBEDDING_CHOICES,
            "sublayer_norm": SUBLAYER_NORM_CHOICES,
            "token_mixing_init": TOKEN_MIXING_INIT_CHOICES,
        }
        for name, enum in choices.items():
            allowed = [c.value for c in enum]
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"--drop-path must be in [0, 1), got {self.drop_path}")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")

    def effective(self) -> "ResMLPSeq2SeqConfig":
        """The options as the model uses them: options that imply others are applied (as fairseq's transformer
        does), so the stored config says what the model is, not which flags were typed."""
        implied = {}
        if self.share_all_embeddings:
            implied["share_decoder_input_output_embed"] = True
        if self.offload_activations:
            implied["checkpoint_activations"] = True
        return dataclasses.replace(self, **implied)


def _unset_by_default(config_cls: type) -> type:
    """The fairseq dataclass: the same fields and help, typed Optional, defaulting to None (= not set)."""
    fields = []
    for f in dataclasses.fields(config_cls):
        help_text = f"{f.metadata['help']} (default: {f.default})"
        # typing.Optional, not `X | None`: fairseq's argparse generator only recognises the former.
        optional = Optional[f.type]  # noqa: UP045
        fields.append((f.name, optional, field(default=None, metadata={"help": help_text})))
    return dataclasses.make_dataclass("ResMLPSeq2SeqArgs", fields, bases=(FairseqDataclass,))


ResMLPSeq2SeqArgs = _unset_by_default(ResMLPSeq2SeqConfig)


def resolve_config(cfg: Any) -> ResMLPSeq2SeqConfig:
    """The typed, effective config from fairseq's ``cfg.model`` (Namespace or DictConfig): set values win, the
    rest (None, or absent: a field newer than the checkpoint) take the ``ResMLPSeq2SeqConfig`` defaults.

    Checkpoints written by this version hold every value (``record_config``), so defaults only fill options that
    were never set: at the start of training, or for a field added after the checkpoint was written (whose default
    is then the behaviour of the version that wrote it).
    """
    values = {}
    for f in dataclasses.fields(ResMLPSeq2SeqConfig):
        value = cfg.get(f.name, None) if hasattr(cfg, "get") else getattr(cfg, f.name, None)
        if value is not None:
            # ChoiceEnum values arrive as enum members from structured configs and as str from argparse.
            values[f.name] = value.value if hasattr(value, "value") else value
    return ResMLPSeq2SeqConfig(**values).effective()


def record_config(cfg: Any, config: ResMLPSeq2SeqConfig) -> None:
    """Write every value of ``config`` into fairseq's ``cfg.model`` (in place), so checkpoints store them all."""
    values = dataclasses.asdict(config)
    if isinstance(cfg, DictConfig):
        with open_dict(cfg):
            for name, value in values.items():
                cfg[name] = value
    else:
        for name, value in values.items():
            setattr(cfg, name, value)
