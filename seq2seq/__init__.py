"""A ResMLP encoder-decoder for translation, registered as a fairseq architecture (used via --user-dir)."""
