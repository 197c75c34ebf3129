"""A randomly initialised sentence-transformers model with all-MiniLM-L6-v2's shapes.

For checks that need no trained weights (does the CUDA path give the CPU path's vectors,
how many chunks/s does the GPU embed) on machines without the packaged model: a WordPiece
tokenizer trained on ``texts`` in well under a second, a 6-layer BERT (hidden 384, 12
heads, FFN 1536) and mean pooling, saved as a sentence-transformers folder.

>>> build_random_minilm(Path("/tmp/minilm"), ["some text"])   # doctest: +SKIP
PosixPath('/tmp/minilm/st')
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_random_minilm(folder: Path, texts: Iterable[str], *, seed: int = 0,
                        vocab_size: int = 4000) -> Path:
    """Write the model under ``folder`` and return its sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors, trainers
    from tokenizers import models as tok_models
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    hf = folder / "hf"
    tok = Tokenizer(tok_models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=512)
    fast.save_pretrained(hf)
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=len(fast), hidden_size=384, num_hidden_layers=6,
                         num_attention_heads=12, intermediate_size=1536,
                         max_position_embeddings=512)).save_pretrained(hf)
    body = models.Transformer(str(hf), max_seq_length=512)
    st = SentenceTransformer(modules=[body, models.Pooling(384, "mean")], device="cpu")
    out = folder / "st"
    st.save(str(out))
    return out


def sample_passages(n: int, *, seed: int = 0, words: tuple[int, int] = (30, 300)) -> list[str]:
    """``n`` chunks of the sample knowledge base (examples/kb), of ``words`` words each."""
    import random

    root = Path(__file__).resolve().parents[2] / "examples" / "kb"
    vocab = [w for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in {".md", ".txt", ".json"}
             for w in p.read_text(encoding="utf-8", errors="replace").split()]
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        size = rnd.randint(*words)
        start = rnd.randrange(max(1, len(vocab) - size))
        out.append(" ".join(vocab[start:start + size]))
    return out
