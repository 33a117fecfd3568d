"""Where the plugin is: ``python -m seq2seq.user_dir`` prints the folder to give fairseq as ``--user-dir``.

``fairseq-train ... --user-dir $(python -m seq2seq.user_dir)`` (``resmlp-fairseq user-dir`` prints the same). fairseq
imports a user dir by its folder name, ``seq2seq``; pass this installed folder, never a copy (see docs/seq2seq.md,
"Loading the plugin").
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def plugin_dir() -> str:
    """The ``--user-dir`` to give fairseq: this package's folder."""
    return str(_PACKAGE)


def recipes_dir() -> str:
    """The fairseq-hydra-train recipes shipped with the plugin: the ``--config-dir`` for ``--config-name``."""
    return str(_PACKAGE / "recipes")


if __name__ == "__main__":
    print(plugin_dir())
