"""Caption tokenizer: a WordPiece model trained on the training captions with Hugging Face ``tokenizers``."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from ..errors import DataError

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID = range(4)


class CaptionTokenizer:
    """Wraps a ``tokenizers.Tokenizer``: ``[CLS] tokens [SEP]``, padded/truncated to ``max_len``.

    ``__call__(captions) -> (ids [B, T] int64, mask [B, T] bool)`` with ``T`` the batch's longest caption rounded
    up to a multiple of 8 (at most ``max_len``). Training is not bit-reproducible (the library breaks ties between
    equally frequent merges in hash-map order): a run saves its tokenizer (``tokenizer.json`` and inside every
    checkpoint), and ``text.tokenizer_path`` reuses one, as the demo does for all its methods.

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
        tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                                                   show_progress=False))
        # The trainer numbers tokens in hash-map order: renumber them (specials first, then sorted) so ids are
        # stable whenever the learned pieces are. Which pieces win ties still varies between calls (see class doc).
        learned = tok.get_vocab()
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
