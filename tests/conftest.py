"""Suite-wide settings, and a tiny random BERT folder for the pretrained text tower (``text.pretrained``)."""
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _private_cache_folder(tmp_path_factory):
    """Disk data caches (data.cache, ``~/.cache/tvdim/decoded`` by default; chosen by ``auto`` under torchrun) go
    to a folder of the test session, also in the worker processes the distributed tests start."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models: one intra-op thread is fastest and avoids oversubscription on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


WORDS = ["a", "the", "red", "blue", "green", "yellow", "circle", "square", "triangle", "star", "small", "large",
         "big", "at", "top", "left", "right", "bottom", "in", "middle", "of", "picture", "with", "and", "on", "is",
         "there", "shows", "one", "two", "three", "objects", "##s", "##e", "##d"]
# [PAD] is not id 0 here, so code that assumes our own tokenizer's padding id fails
VOCAB = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"] + WORDS


def make_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """Random 1-layer BERT (hidden 16) + fast WordPiece tokenizer saved with save_pretrained into ``folder``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(VOCAB)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(str(folder))
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, pad_token_id=vocab["[PAD]"])
    BertModel(cfg).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return make_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert")
