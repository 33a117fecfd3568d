"""A deterministic synthetic language pair for tests, the demo and the benchmark: English-like source, made-up target.

Translating it needs real cross-position modelling, not word-by-word lookup:

- vocabulary mapping: every source lemma has one made-up target lemma;
- word order: the target is verb-final (subject, object, verb), puts adjectives after their noun and moves the
  prepositional phrase to the front, with a postposition instead of a preposition;
- agreement: each target noun has a gender that the source does not show. Determiners and adjectives agree with
  their noun in gender and number (the noun comes *after* them in the source), determiners also mark case
  (subject / object / oblique), and the sentence-final verb agrees with the subject's gender and number, i.e. with
  a noun at the other end of the sentence.

Example (source -> target)::

    the big dog sees some small cats near a tree
    -> mos nesi puve da fali sasia main kudeen zekaas kevuta
       (a tree near | the dog big | some cats small | sees: "main" = indefinite, a-gender, plural, object)

Usage: ``python -m seq2seq_data.synthetic --out-dir raw/synthetic`` writes ``{train,valid,test}.{src,tgt}``.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

_ANIMATE = ["dog", "cat", "bird", "horse", "teacher", "doctor", "farmer", "child", "friend", "king", "queen"]
_ANIMATE += ["student", "painter", "baker", "sailor", "driver"]
_INANIMATE = ["tree", "house", "river", "garden", "city", "road", "table", "window", "book", "letter", "boat"]
_INANIMATE += ["car", "bridge", "forest", "village", "mountain"]
NOUNS = _ANIMATE + _INANIMATE
ADJECTIVES = ["big", "small", "red", "old", "young", "happy", "tall", "quiet", "green", "dark", "bright", "strong"]
VERBS = ["see", "like", "follow", "help", "call", "find", "watch", "visit", "know", "paint", "carry", "remember"]
PREPOSITIONS = ["near", "behind", "under", "beside"]
GENDERS = ("a", "o")
SOURCE_LANG, TARGET_LANG = "src", "tgt"

# The target lexicon is fixed by this seed, so every corpus (whatever its own seed) is the same language.
_LEXICON_SEED = 2105_03404
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiu"  # "o" is kept for gender endings, so lemmas never look like inflected forms


@dataclass(frozen=True)
class Lexicon:
    """Target lemmas for every source lemma, and the (hidden) gender of every noun."""

    nouns: dict[str, str]
    genders: dict[str, str]
    adjectives: dict[str, str]
    verbs: dict[str, str]
    postpositions: dict[str, str]


def build_lexicon() -> Lexicon:
    """The one fixed target vocabulary: two-syllable made-up lemmas, all distinct."""
    rng = random.Random(_LEXICON_SEED)
    used: set[str] = set()

    def new_lemma() -> str:
        while True:
            lemma = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(2))
            if lemma not in used:
                used.add(lemma)
                return lemma

    nouns = {w: new_lemma() for w in NOUNS}
    genders = {w: rng.choice(GENDERS) for w in NOUNS}
    return Lexicon(
        nouns=nouns,
        genders=genders,
        adjectives={w: new_lemma() for w in ADJECTIVES},
        verbs={w: new_lemma() for w in VERBS},
        postpositions={w: new_lemma() for w in PREPOSITIONS},
    )


@dataclass(frozen=True)
class NounPhrase:
    noun: str
    adjectives: tuple[str, ...]
    plural: bool
    definite: bool


def _english_s(word: str) -> str:
    """English plural noun / third-person singular verb: dogs, sees; cities, carries; watches; children."""
    if word == "child":
        return "children"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("ch", "sh", "s", "x")):
        return word + "es"
    return word + "s"


def _source_np(np_: NounPhrase) -> list[str]:
    determiner = "the" if np_.definite else ("some" if np_.plural else "a")
    return [determiner, *np_.adjectives, _english_s(np_.noun) if np_.plural else np_.noun]


def _target_np(np_: NounPhrase, case: str, lex: Lexicon) -> list[str]:
    gender = lex.genders[np_.noun]
    number = "i" if np_.plural else ""
    # Determiner = definiteness + gender + number + case, e.g. "dai" (definite, a-gender, plural, subject).
    determiner = ("d" if np_.definite else "m") + gender + number + {"subj": "", "obj": "n", "obl": "s"}[case]
    noun = lex.nouns[np_.noun] + ("en" if np_.plural else "")
    adjectives = [lex.adjectives[a] + gender + ("s" if np_.plural else "") for a in np_.adjectives]
    return [determiner, noun, *adjectives]


def _random_np(rng: random.Random) -> NounPhrase:
    count = rng.choices((0, 1, 2), weights=(4, 4, 2))[0]
    return NounPhrase(
        noun=rng.choice(NOUNS),
        adjectives=tuple(rng.sample(ADJECTIVES, count)),
        plural=rng.random() < 0.4,
        definite=rng.random() < 0.5,
    )


def sample_pair(rng: random.Random, lex: Lexicon) -> tuple[str, str]:
    """One (source, target) sentence pair."""
    subject, obj = _random_np(rng), _random_np(rng)
    verb = rng.choice(VERBS)
    source = [*_source_np(subject), verb if subject.plural else _english_s(verb), *_source_np(obj)]
    # Verb-final target; the verb agrees with the subject's gender and number.
    verb_suffix = "t" + lex.genders[subject.noun] + ("i" if subject.plural else "")
    target = [*_target_np(subject, "subj", lex), *_target_np(obj, "obj", lex), lex.verbs[verb] + verb_suffix]
    if rng.random() < 0.5:
        preposition, place = rng.choice(PREPOSITIONS), _random_np(rng)
        source += [preposition, *_source_np(place)]
        target = [*_target_np(place, "obl", lex), lex.postpositions[preposition], *target]
    return " ".join(source), " ".join(target)


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """Disjoint splits: no source sentence appears in two splits (nor twice in one)."""
    rng, lex = random.Random(seed), build_lexicon()
    seen: set[str] = set()
    splits: dict[str, list[tuple[str, str]]] = {}
    for name, size in sizes.items():
        pairs = []
        while len(pairs) < size:
            source, target = sample_pair(rng, lex)
            if source not in seen:
                seen.add(source)
                pairs.append((source, target))
        splits[name] = pairs
    return splits


def write_splits(out_dir: str | Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """Write ``{split}.src`` / ``{split}.tgt`` (one sentence per line) for each split; returns ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, pairs in generate_splits(sizes, seed).items():
        for index, lang in enumerate((SOURCE_LANG, TARGET_LANG)):
            (out / f"{name}.{lang}").write_text("".join(pair[index] + "\n" for pair in pairs), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", required=True, help="folder for {train,valid,test}.{src,tgt}")
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--valid-size", type=int, default=500)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (the language itself never changes)")
    args = parser.parse_args(argv)
    sizes = {"train": args.train_size, "valid": args.valid_size, "test": args.test_size}
    out = write_splits(args.out_dir, sizes, args.seed)
    print(f"wrote {sizes} sentence pairs ({SOURCE_LANG} -> {TARGET_LANG}) to {out}")


if __name__ == "__main__":
    main()
