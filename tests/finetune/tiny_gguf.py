"""Write the tests' tiny Hugging Face Llama (``conftest.build_tiny_model``) as a GGUF file.

llama.cpp needs a GGUF base to apply a GGUF LoRA to; the real converter
(``convert_hf_to_gguf.py``) is not installed, and the tiny model is a plain Llama with a
byte-level BPE tokenizer, so the mapping is short: llama.cpp's tensor names, q/k rows in its
rope order (:func:`ragtune.finetune.gguf_export.permute_rows`, as for LoRA tensors), f32
weights, and the tokenizer as a ``gpt2`` BPE vocabulary with its merges and chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
          "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
          "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
          "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def tiny_llama_gguf(folder: Path, out: Path) -> Path:
    """``folder`` (config.json, model.safetensors, tokenizer.json) as the f32 GGUF ``out``."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from ragtune.finetune.gguf_export import permute_rows

    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(float((cfg.get("rope_parameters") or {}).get("rope_theta")
                               or cfg.get("rope_theta") or 10000.0))
    w.add_rope_dimension_count(cfg["hidden_size"] // n_head)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab: dict[str, int] = tok["model"]["vocab"]
    specials = {t["content"]: t["id"] for t in tok["added_tokens"]}
    tokens = [""] * max([*vocab.values(), *specials.values()], default=-1)
    tokens += [""]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for text, i in vocab.items():
        tokens[i] = text
    for text, i in specials.items():
        tokens[i], types[i] = text, gguf.TokenType.CONTROL
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")  # the GPT-2 split regex: tokenizers' ByteLevel(use_regex=True)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(specials[tok_cfg["eos_token"]] if isinstance(tok_cfg.get("eos_token"), str)
                       else specials["<|end|>"])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_pad_token_id(cfg["pad_token_id"])
    w.add_add_bos_token(False)  # the HF tokenizer adds none either: same prompt tokens
    w.add_chat_template(tok_cfg.get("chat_template") or (folder / "chat_template.jinja").read_text(encoding="utf-8"))

    weights = load_file(str(folder / "model.safetensors"))
    w.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"].astype(np.float32))
    for i in range(cfg["num_hidden_layers"]):
        for hf, name in _NAMES.items():
            t = weights[f"model.layers.{i}.{hf}.weight"].astype(np.float32)
            if name in ("attn_q", "attn_k"):
                t = permute_rows(t, n_head if name == "attn_q" else n_kv)
            w.add_tensor(f"blk.{i}.{name}.weight", np.ascontiguousarray(t))
    w.add_tensor("output_norm.weight", weights["model.norm.weight"].astype(np.float32))
    w.add_tensor("output.weight", weights["lm_head.weight"].astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
