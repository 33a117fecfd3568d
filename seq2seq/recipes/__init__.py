"""The plugin's fairseq-hydra-train recipes (YAML package data): ``resmlp-fairseq recipe-dir`` prints this folder."""
