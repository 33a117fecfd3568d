"""Raw parallel text -> joint sentencepiece model -> encoded text -> ``fairseq-preprocess`` binarised data.

Usage (flags mirror fairseq-preprocess; anything after ``--`` is passed to it unchanged)::

    python -m seq2seq_data.prepare --source-lang src --target-lang tgt \
        --trainpref raw/train --validpref raw/valid --testpref raw/test \
        --vocab-size 8000 --destdir data-bin/synthetic [-- --workers 4]

writes ``destdir/spm.model`` (give it to ``fairseq-generate --bpe sentencepiece --sentencepiece-model``), the
encoded text under ``destdir/spm_encoded/`` and the binarised splits with one joined dictionary (so
``--share-all-embeddings`` works). ``--validpref`` / ``--testpref`` take comma-separated prefixes, as in fairseq.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import sentencepiece as spm


def train_sentencepiece(
    text_files: list[Path], model_prefix: Path, vocab_size: int, *, model_type: str = "bpe"
) -> Path:
    """Train one joint model on both languages' training text; returns the ``.model`` path.

    The vocabulary is a soft limit so tiny corpora still train (sentencepiece otherwise refuses a vocabulary
    larger than the text supports). fairseq adds its own <pad>, <s>, </s>, <unk> dictionary entries, so the
    sentencepiece model keeps only <unk>.
    """
    missing = [str(f) for f in text_files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"training text not found: {missing}; check --trainpref and the language codes")
    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        input=[str(f) for f in text_files],
        model_prefix=str(model_prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        hard_vocab_limit=False,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        minloglevel=2,
    )
    return model_prefix.with_suffix(".model")


def encode_file(processor: spm.SentencePieceProcessor, source: Path, target: Path) -> None:
    """Write ``source`` as space-separated sentencepiece pieces, one sentence per line."""
    with source.open(encoding="utf-8") as fin, target.open("w", encoding="utf-8") as fout:
        for line in fin:
            fout.write(" ".join(processor.encode(line.strip(), out_type=str)) + "\n")


def prepare(
    *,
    source_lang: str,
    target_lang: str,
    trainpref: str,
    destdir: str | Path,
    validpref: str | None = None,
    testpref: str | None = None,
    vocab_size: int = 8000,
    model_type: str = "bpe",
    preprocess_args: list[str] | None = None,
) -> Path:
    """Run the whole pipeline; returns ``destdir``. Raises if ``fairseq-preprocess`` fails (its log is shown)."""
    dest = Path(destdir)
    langs = (source_lang, target_lang)
    model_path = train_sentencepiece(
        [Path(f"{trainpref}.{lang}") for lang in langs], dest / "spm", vocab_size, model_type=model_type
    )
    processor = spm.SentencePieceProcessor(model_file=str(model_path))

    encoded_dir = dest / "spm_encoded"
    encoded_dir.mkdir(parents=True, exist_ok=True)
    encoded: dict[str, str] = {}
    for flag, prefixes in (("trainpref", trainpref), ("validpref", validpref), ("testpref", testpref)):
        if not prefixes:
            continue
        names = []
        for index, prefix in enumerate(prefixes.split(",")):
            # fairseq names extra valid/test sets valid1, test1, ...: mirror that in the encoded file names.
            name = flag.removesuffix("pref") + (str(index) if index else "")
            for lang in langs:
                raw = Path(f"{prefix}.{lang}")
                if not raw.is_file():
                    raise FileNotFoundError(f"{raw} not found (from --{flag} {prefix} and language {lang})")
                encode_file(processor, raw, encoded_dir / f"{name}.{lang}")
            names.append(str(encoded_dir / name))
        encoded[flag] = ",".join(names)

    command = [
        sys.executable,
        "-m",
        "fairseq_cli.preprocess",
        "--source-lang",
        source_lang,
        "--target-lang",
        target_lang,
        "--destdir",
        str(dest),
        "--joined-dictionary",
    ]
    for flag, value in encoded.items():
        command += [f"--{flag}", value]
    command += preprocess_args or []
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"fairseq-preprocess failed ({' '.join(command)}):\n{result.stderr[-4000:]}")
    return dest


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    passthrough: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, passthrough = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-lang", required=True)
    parser.add_argument("--target-lang", required=True)
    parser.add_argument("--trainpref", required=True, help="raw training text prefix: {trainpref}.{lang}")
    parser.add_argument("--validpref", default=None, help="comma-separated raw validation prefixes")
    parser.add_argument("--testpref", default=None, help="comma-separated raw test prefixes")
    parser.add_argument("--destdir", required=True, help="output folder (binarised data, spm.model)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="joint sentencepiece vocabulary size")
    parser.add_argument("--model-type", default="bpe", choices=["unigram", "bpe"], help="sentencepiece model")
    args = parser.parse_args(argv)
    dest = prepare(
        source_lang=args.source_lang,
        target_lang=args.target_lang,
        trainpref=args.trainpref,
        validpref=args.validpref,
        testpref=args.testpref,
        destdir=args.destdir,
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        preprocess_args=passthrough,
    )
    print(f"binarised data in {dest}; sentencepiece model {dest / 'spm.model'}")


if __name__ == "__main__":
    main()
