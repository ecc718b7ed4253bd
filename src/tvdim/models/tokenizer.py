"""Caption tokenizer: a WordPiece model trained on the training captions with Hugging Face ``tokenizers``."""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from ..errors import DataError

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID = range(4)


class CaptionTokenizer:
    """Wraps a ``tokenizers.Tokenizer``: ``[CLS] tokens [SEP]``, padded/truncated to ``max_len``.

    ``__call__(captions) -> (ids [B, T] int64, mask [B, T] bool)`` with ``T`` the batch's longest caption rounded
    up to a multiple of 8 (at most ``max_len``). Training is deterministic: the same captions give the same
    tokenizer JSON in any process (:func:`wordpiece_vocab` learns the pieces itself, ties broken by the pieces'
    text; the ``tokenizers`` trainer broke them in a per-call random hash-map order). A run still saves its
    tokenizer (``tokenizer.json`` and inside every checkpoint), and ``text.tokenizer_path`` reuses one.

    Any ``tokenizers.Tokenizer`` can be wrapped, e.g. a Hugging Face model's (``text.pretrained``): ``pad_id`` /
    ``pad_token`` default to the padding the tokenizer already carries (as saved by :meth:`to_json`), else ours.
    """

    def __init__(self, tokenizer: Tokenizer, max_len: int = 32, pad_id: int | None = None,
                 pad_token: str | None = None) -> None:
        self.tok, self.max_len = tokenizer, max_len
        saved = tokenizer.padding or {}
        self.pad_id = int(pad_id if pad_id is not None else saved.get("pad_id", PAD_ID))
        pad_token = pad_token if pad_token is not None else saved.get("pad_token", "[PAD]")
        self.tok.enable_truncation(max_len)
        self.tok.enable_padding(pad_id=self.pad_id, pad_token=pad_token, pad_to_multiple_of=8)

    @classmethod
    def train(cls, captions: Iterable[str], vocab_size: int = 2000, max_len: int = 32) -> "CaptionTokenizer":
        """Train WordPiece (lower-cased, accents stripped) on ``captions``; raises DataError on an empty corpus."""
        corpus = [c for c in captions if c and c.strip()]
        if not corpus:
            raise DataError("cannot train the caption tokenizer: the training data has no non-empty caption")
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        words: Counter[str] = Counter()
        for caption in corpus:  # the words the library's trainer would count: normalised, then pre-tokenised
            words.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(caption)))
        learned = wordpiece_vocab(words, vocab_size)
        # ids: specials first, then the pieces sorted
        order = SPECIAL + sorted(t for t in learned if t not in SPECIAL)
        tok.model = models.WordPiece({t: i for i, t in enumerate(order)}, unk_token="[UNK]")
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)])
        return cls(tok, max_len)

    @classmethod
    def from_json(cls, text: str, max_len: int = 32) -> "CaptionTokenizer":
        return cls(Tokenizer.from_str(text), max_len)

    @classmethod
    def from_file(cls, path: str | Path, max_len: int = 32) -> "CaptionTokenizer":
        try:
            return cls(Tokenizer.from_file(str(path)), max_len)
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise DataError(f"cannot read tokenizer file {path}: {exc}") from exc

    def to_json(self) -> str:
        return self.tok.to_str()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tok.encode_batch([c if c else "" for c in captions])
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.bool)
        return ids[:, : self.max_len], mask[:, : self.max_len]  # padding to a multiple of 8 may pass max_len


def wordpiece_vocab(words: Counter[str], vocab_size: int, prefix: str = "##") -> list[str]:
    """The pieces the ``tokenizers`` WordPiece trainer learns (BPE merges over the words' characters, a piece
    inside a word carrying ``prefix``; every character kept), but deterministic: of equally frequent pairs the
    one whose ``(left, right)`` text sorts first merges. Returns :data:`SPECIAL`, the alphabet, then the merges,
    stopping at ``vocab_size`` pieces (or when no pair is left)."""
    vocab = list(SPECIAL)
    known = set(vocab)
    splits = [[w[0]] + [prefix + ch for ch in w[1:]] for w in sorted(words) if w]
    counts = [words[w] for w in sorted(words) if w]
    for piece in sorted({p for sym in splits for p in sym}):
        if piece not in known:
            vocab.append(piece)
            known.add(piece)
    pair_count: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, sym in enumerate(splits):
        for pair in zip(sym, sym[1:]):
            pair_count[pair] += counts[i]
            where[pair].add(i)
    heap = [(-c, a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        if pair_count.get((a, b), 0) != -neg or neg == 0:
            continue  # stale entry: the pair's count changed since it was pushed
        new = a + (b[len(prefix):] if b.startswith(prefix) else b)
        if new not in known:
            vocab.append(new)
            known.add(new)
        touched: set[tuple[str, str]] = set()
        for i in sorted(where.pop((a, b), ())):
            sym, c = splits[i], counts[i]
            for pair in zip(sym, sym[1:]):
                pair_count[pair] -= c
                where[pair].discard(i)
                touched.add(pair)
            merged, j = [], 0
            while j < len(sym):
                if j + 1 < len(sym) and sym[j] == a and sym[j + 1] == b:
                    merged.append(new)
                    j += 2
                else:
                    merged.append(sym[j])
                    j += 1
            splits[i] = merged
            for pair in zip(merged, merged[1:]):
                pair_count[pair] += c
                where[pair].add(i)
                touched.add(pair)
        for pair in sorted(touched):
            if pair_count.get(pair, 0) > 0:
                heapq.heappush(heap, (-pair_count[pair], *pair))
            else:
                pair_count.pop(pair, None)
                where.pop(pair, None)
    return vocab
