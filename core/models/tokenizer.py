"""A CLIP-style BPE tokenizer built offline from a small corpus of captions.

SD3's text encoders expect CLIP's tokenizer format: lowercase byte-level BPE with a '</w>'
end-of-word suffix, a merges file that starts with '#version: 0.2', and <|startoftext|> /
<|endoftext|> as the last two ids. We train the merges ourselves (`train_clip_bpe`, plain BPE
with deterministic tie-breaking) on the captions the model will see, so every known word becomes
a single token. The `tokenizers` package is still needed at run time: transformers' CLIPTokenizer
reads the saved tokenizer.json through it (tokenizer_2/ of the shipped model has only that file).
"""

from __future__ import annotations

import json
from collections import Counter
import re
from pathlib import Path
from typing import Iterable

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

# CLIP's pre-tokenizer splits words, single digits and runs of punctuation.
_CLIP_SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")


def _words(texts: Iterable[str]) -> list[str]:
    return [w for t in texts for w in _CLIP_SPLIT.findall(t.lower())]


def train_clip_bpe(texts: Iterable[str], vocab_size: int = 1000) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn a CLIP-format BPE vocabulary and merge list from `texts`.

    Returns (vocab, merges): vocab maps token -> id with the two special tokens last.

    Plain BPE over word counts, written out because `tokenizers`' BpeTrainer breaks ties between
    equally frequent pairs in hash order: two builds gave two merge lists. Here ties go to the
    alphabetically first pair, so the same captions always give the same tokenizer.
    """
    alphabet = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789'-.,")
    counts = Counter(_words(texts))
    words = {w: [*w[:-1], w[-1] + "</w>"] for w in counts}
    vocab: dict[str, int] = {}
    # Every single character, with and without the suffix, stays reachable for unseen words.
    for ch in alphabet:
        for tok in (ch, ch + "</w>"):
            vocab.setdefault(tok, len(vocab))
    for symbols in words.values():
        for tok in symbols:
            vocab.setdefault(tok, len(vocab))
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size - 2:
        pairs: Counter = Counter()
        for w, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[w]
        if not pairs:
            break  # every word is one token
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        for w, symbols in words.items():
            words[w] = _merge(symbols, best)
    vocab[BOS_TOKEN] = len(vocab)
    vocab[EOS_TOKEN] = len(vocab)
    return vocab, merges


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def save_clip_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]], out_dir: str | Path, max_length: int) -> Path:
    """Write vocab.json, merges.txt and the tokenizer config CLIPTokenizer.from_pretrained reads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=True))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "do_lower_case": True,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": EOS_TOKEN, "unk_token": EOS_TOKEN})
    )
    return out


def load_clip_tokenizer(path: str | Path, max_length: int | None = None):
    """CLIPTokenizer from a folder, offline. model_max_length comes from the folder unless given."""
    from transformers import CLIPTokenizer

    kwargs = {"local_files_only": True}
    if max_length is not None:
        kwargs["model_max_length"] = max_length
    return CLIPTokenizer.from_pretrained(str(path), **kwargs)


def build_clip_tokenizer(texts: Iterable[str], out_dir: str | Path, max_length: int, vocab_size: int = 1000):
    """Train, save and load a CLIP tokenizer for `texts` (the offline replacement for a hub download)."""
    vocab, merges = train_clip_bpe(texts, vocab_size=vocab_size)
    save_clip_tokenizer(vocab, merges, out_dir, max_length)
    return load_clip_tokenizer(out_dir)
