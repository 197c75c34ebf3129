"""PEFT LoRA -> GGUF LoRA export, and llama.cpp applying it the way PEFT does.

Unit tests build tiny random Qwen2 / Llama models with PEFT adapters in the test and check
the written GGUF (names, orientation, scale, metadata) through ``gguf.GGUFReader``: for
every adapted weight, ``alpha / rank * lora_b @ lora_a`` read back from the file must equal
PEFT's own ``get_delta_weight`` (in llama.cpp's row order for Llama q/k).

The integration test runs the real packaged Qwen2.5 0.5B: the same random adapter in PEFT
(on the HF base derived from the GGUF) and in llama.cpp (exported, on the quantised GGUF)
must shift the next-token logits the same way, and greedy decoding must agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import InputError
from ragtune.finetune.adapters import AdapterRegistry
from ragtune.finetune.gguf_export import export_gguf_lora, permute_rows, read_gguf_lora

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def _tiny(kind: str, tmp: Path, **lora: object) -> tuple[object, dict, Path]:
    """(PeftModel, base config dict, adapter folder) for a 2-layer random model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if kind == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    config = cls(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2)
    options = {"r": 4, "lora_alpha": 8, "target_modules": list(ALL_LINEAR),
               "init_lora_weights": False} | lora
    model = get_peft_model(model_cls(config), LoraConfig(**options))
    folder = tmp / f"{kind}-adapter"
    model.save_pretrained(str(folder))
    return model, config.to_dict(), folder


def _peft_deltas(model) -> dict[str, np.ndarray]:
    """{'blk.i.attn_q.weight': PEFT's scale * B @ A} for every LoRA layer."""
    deltas = {}
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
            layer, proj = int(name.split(".layers.")[1].split(".")[0]), name.rsplit(".", 1)[1]
            deltas[f"blk.{layer}.{GGUF_NAMES[proj]}.weight"] = (
                module.get_delta_weight("default").detach().numpy())
    return deltas


def _gguf_deltas(path: Path) -> dict[str, np.ndarray]:
    """What llama.cpp adds to each weight at lora_scale 1: alpha / rank * lora_b @ lora_a."""
    lora = read_gguf_lora(path)
    t = lora["tensors"]
    out = {}
    for name in t:
        if name.endswith(".lora_a"):
            base = name.removesuffix(".lora_a")
            a, b = t[name].astype(np.float32), t[base + ".lora_b"].astype(np.float32)
            out[base] = lora["alpha"] / a.shape[0] * b @ a
    return out


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_names_shapes_and_deltas_match_peft(kind: str, tmp_path: Path) -> None:
    model, config, folder = _tiny(kind, tmp_path)
    out = export_gguf_lora(folder, tmp_path / "a.gguf", base_config=config, metadata={"k": "v"})
    lora = read_gguf_lora(out)
    assert (lora["architecture"], lora["type"], lora["adapter_type"], lora["alpha"]) == (
        kind, "adapter", "lora", 8.0)
    assert lora["metadata"] == {"k": "v"}
    expected = {f"blk.{i}.{g}.weight.lora_{ab}" for i in range(2) for g in GGUF_NAMES.values() for ab in "ab"}
    assert set(lora["tensors"]) == expected
    # PEFT orientation: lora_a is (rank, in), lora_b is (out, rank); ggml reads them as
    # ne = [in, rank] and [rank, out], which llama_adapter_lora_init checks against the base.
    assert lora["tensors"]["blk.0.attn_k.weight.lora_a"].shape == (4, 64)
    assert lora["tensors"]["blk.0.attn_k.weight.lora_b"].shape == (32, 4)  # 2 kv heads x 16
    assert lora["tensors"]["blk.1.ffn_down.weight.lora_a"].shape == (4, 96)
    peft, gguf = _peft_deltas(model), _gguf_deltas(out)
    assert set(peft) == set(gguf) and len(peft) == 14
    for name, delta in peft.items():
        if kind == "llama" and ("attn_q" in name or "attn_k" in name):
            # llama.cpp stores Llama's q/k rows in its rope order; the adapter must follow.
            delta = permute_rows(delta, 4 if "attn_q" in name else 2)
        np.testing.assert_allclose(gguf[name], delta, rtol=1e-5, atol=1e-6, err_msg=name)
    if kind == "llama":  # the permutation is not the identity, so the check above means something
        assert not np.allclose(gguf["blk.0.attn_q.weight"], peft["blk.0.attn_q.weight"], atol=1e-4)


def test_rslora_and_patterns_are_folded_into_b(tmp_path: Path) -> None:
    """llama.cpp knows only alpha / rank; rsLoRA and per-module rank/alpha must still match."""
    model, config, folder = _tiny("qwen2", tmp_path, use_rslora=True, r=4, lora_alpha=8,
                                  rank_pattern={"v_proj": 8}, alpha_pattern={"down_proj": 3})
    out = export_gguf_lora(folder, tmp_path / "rs.gguf", base_config=config)
    lora = read_gguf_lora(out)
    assert lora["alpha"] == 8.0 and lora["tensors"]["blk.0.attn_v.weight.lora_a"].shape == (8, 64)
    peft, gguf = _peft_deltas(model), _gguf_deltas(out)
    for name, delta in peft.items():
        np.testing.assert_allclose(gguf[name], delta, rtol=1e-5, atol=1e-6, err_msg=name)


def test_f16_is_half_the_size_and_close(tmp_path: Path) -> None:
    model, config, folder = _tiny("qwen2", tmp_path)
    f32 = export_gguf_lora(folder, tmp_path / "a32.gguf", base_config=config)
    f16 = export_gguf_lora(folder, tmp_path / "a16.gguf", base_config=config, dtype="f16")
    assert read_gguf_lora(f16)["tensors"]["blk.0.attn_q.weight.lora_a"].dtype == np.float16
    assert f16.stat().st_size < 0.6 * f32.stat().st_size
    for name, delta in _peft_deltas(model).items():
        np.testing.assert_allclose(_gguf_deltas(f16)[name], delta, atol=2e-3, err_msg=name)


def test_unsupported_adapters_are_refused(tmp_path: Path) -> None:
    _, config, folder = _tiny("qwen2", tmp_path)
    with pytest.raises(InputError, match="model_type gpt2.*convert_lora_to_gguf.py"):
        export_gguf_lora(folder, tmp_path / "x.gguf", base_config={**config, "model_type": "gpt2"})
    with pytest.raises(InputError, match="GPT2LMHeadModel.*convert_lora_to_gguf.py"):
        export_gguf_lora(folder, tmp_path / "x.gguf", base_config={**config, "architectures": ["GPT2LMHeadModel"]})
    with pytest.raises(InputError, match="f32, f16"):
        export_gguf_lora(folder, tmp_path / "x.gguf", base_config=config, dtype="q8_0")
    cfg_file = folder / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps(cfg | {"use_dora": True}))
    with pytest.raises(InputError, match="adapter_config.json: use_dora .*merge the adapter"):
        export_gguf_lora(folder, tmp_path / "x.gguf", base_config=config)
    cfg_file.write_text(json.dumps(cfg))
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(InputError, match="no adapter_model.safetensors"):
        export_gguf_lora(folder, tmp_path / "x.gguf", base_config=config)
    with pytest.raises(InputError, match="cannot find the base model's config.json"):
        export_gguf_lora(folder, tmp_path / "x.gguf")  # base_model_name_or_path is None here
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*partial"))


def test_registry_export_and_gguf_for(tmp_path: Path) -> None:
    """Default location <adapter>/adapter.gguf, and gguf_for only matches the trained-on base."""
    import shutil

    from ragtune.types import file_sha256

    _, config, folder = _tiny("qwen2", tmp_path)
    base_dir = tmp_path / "base"  # the HF copy of the base: only its config.json is read
    base_dir.mkdir()
    (base_dir / "config.json").write_text(json.dumps(config))
    base_gguf, other_gguf = tmp_path / "base.gguf", tmp_path / "other.gguf"
    base_gguf.write_bytes(b"GGUF base weights")
    other_gguf.write_bytes(b"GGUF other weights")
    registry = AdapterRegistry(tmp_path / "adapters")
    shutil.copytree(folder, registry.path_for("style"))
    (registry.path_for("style") / "run.json").write_text(json.dumps({
        "base_model": str(base_gguf), "base_model_path": str(base_dir),
        "base_model_hash": "sha256:" + file_sha256(base_gguf)}))
    assert registry.gguf_for("style", base_gguf) is None  # not exported yet
    path = registry.export("style", fmt="gguf")
    assert path == registry.path_for("style") / "adapter.gguf"
    assert read_gguf_lora(path)["metadata"]["base_model"] == str(base_gguf)
    assert registry.gguf_for("style", base_gguf) == path
    assert registry.gguf_for("style", other_gguf) is None
    assert registry.export_gguf("style", tmp_path / "exp") == tmp_path / "exp" / "style.gguf"
    assert registry.export_gguf("style", tmp_path / "s.gguf", dtype="f16") == tmp_path / "s.gguf"


@pytest.mark.skipif(not os.environ.get("LLAMA_CPP_DIR"), reason="set LLAMA_CPP_DIR to a llama.cpp checkout")
@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_same_tensors_as_llama_cpp_converter(kind: str, tmp_path: Path) -> None:
    """Golden test against llama.cpp's own convert_lora_to_gguf.py (when a checkout is given)."""
    import subprocess
    import sys

    import gguf

    model, config, folder = _tiny(kind, tmp_path)
    base = tmp_path / "base"
    base_config = model.get_base_model().config
    base_config.architectures = [type(model.get_base_model()).__name__]
    base_config.save_pretrained(str(base))
    ref = tmp_path / "ref.gguf"
    proc = subprocess.run([sys.executable, str(Path(os.environ["LLAMA_CPP_DIR"]) / "convert_lora_to_gguf.py"),
                           "--base", str(base), "--outfile", str(ref), str(folder)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = export_gguf_lora(folder, tmp_path / "ours.gguf", base_config=config)
    a, b = gguf.GGUFReader(str(ref)), gguf.GGUFReader(str(ours))
    for key in ("general.architecture", "general.type", "adapter.type", "adapter.lora.alpha"):
        assert a.get_field(key).contents() == b.get_field(key).contents(), key
    ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
    assert set(ta) == set(tb)
    for name, t in ta.items():
        assert list(t.shape) == list(tb[name].shape) and t.tensor_type == tb[name].tensor_type
        np.testing.assert_array_equal(t.data, tb[name].data, err_msg=name)


# ---------------------------------------------------------------- real model, real llama.cpp


def _require_llama_cpp() -> None:
    pytest.importorskip("llama_cpp")
    from ragtune.generate.llama_cpp import runnable_here

    problem = runnable_here()
    if problem:
        pytest.skip(problem)


@pytest.mark.integration
@pytest.mark.slow
def test_llama_cpp_applies_the_exported_lora_like_peft(tmp_path: Path) -> None:
    _require_llama_cpp()
    import torch
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.finetune.train import resolve_base_folder
    from ragtune.generate.llama_cpp import lora_generator
    from ragtune.generate.models import resolve_model

    gguf_path = resolve_model("qwen2.5-0.5b")
    folder, _ = resolve_base_folder("qwen2.5-0.5b")  # the dequantised GGUF: the same weights
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(ALL_LINEAR),
                                            init_lora_weights=False))
    with torch.no_grad():  # random non-zero A and B: a visible but not destructive change
        for name, p in peft.named_parameters():
            if "lora_A" in name:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            elif "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.01)
    peft.save_pretrained(str(tmp_path / "adapter"))
    lora = export_gguf_lora(tmp_path / "adapter", tmp_path / "adapter.gguf",
                            base_config=json.loads((folder / "config.json").read_text()))

    messages = [{"role": "user", "content": "Write one sentence about returning a tent to a camping store."}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    n_new = 16
    threads = min(4, os.cpu_count() or 1)

    def llama(lora_path: Path | None) -> Llama:
        return Llama(model_path=str(gguf_path), n_ctx=256, logits_all=True, verbose=False,
                     n_threads=threads, lora_path=str(lora_path) if lora_path else None)

    # Greedy continuation by llama.cpp + LoRA, then all logits over prompt + continuation.
    cpp_lora = llama(lora)
    new = []
    for tok in cpp_lora.generate(ids, temp=0.0):
        new.append(tok)
        if len(new) == n_new:
            break
    seq = ids + new
    cpp_lora.reset()
    cpp_lora.eval(seq)
    lora_cpp = np.array(cpp_lora.scores[: len(seq)])
    del cpp_lora
    cpp_base = llama(None)
    cpp_base.eval(seq)
    base_cpp = np.array(cpp_base.scores[: len(seq)])
    base_new = []
    cpp_base.reset()
    for tok in cpp_base.generate(ids, temp=0.0):
        base_new.append(tok)
        if len(base_new) == n_new:
            break
    del cpp_base
    with torch.no_grad():
        lora_hf = peft(torch.tensor([seq])).logits[0].numpy()
        with peft.disable_adapter():
            base_hf = peft(torch.tensor([seq])).logits[0].numpy()

    positions = range(len(ids) - 1, len(seq) - 1)  # the logits that chose the continuation
    cosines, errors = [], []
    for i in positions:
        d_hf, d_cpp = lora_hf[i] - base_hf[i], lora_cpp[i] - base_cpp[i]
        cosines.append(float(d_hf @ d_cpp / np.linalg.norm(d_hf) / np.linalg.norm(d_cpp)))
        errors.append(float(np.linalg.norm(lora_cpp[i] - lora_hf[i]) / np.linalg.norm(d_hf)))
    # The adapter moves llama.cpp's logits in the same direction as PEFT's (a wrong tensor
    # mapping or orientation gives ~0) and by the same amount (a wrong scale gives error ~1);
    # what remains is the Q4/Q8 arithmetic noise, measured 0.06-0.13 of the shift.
    assert min(cosines) > 0.95, cosines
    assert max(errors) < 0.3, errors
    # Greedy decoding agrees: PEFT's argmax at every step is llama.cpp's chosen token,
    # except at near-ties (margin under 0.5 logits) where quantisation noise decides.
    for k, i in enumerate(positions):
        top2 = np.sort(lora_hf[i])[-2:]
        if top2[1] - top2[0] > 0.5:
            assert int(lora_hf[i].argmax()) == new[k], (k, tokenizer.decode(new))
    assert new != base_new, "the adapter did not change llama.cpp's greedy output"

    # The same through the generator ragtune uses: chat template, streaming, timings.
    gen = lora_generator(gguf_path, lora, name="random", n_ctx=512, max_tokens=n_new, threads=threads)
    c = gen.complete(messages)
    assert gen.name.endswith("+random")
    assert c.text.strip() == tokenizer.decode(new, skip_special_tokens=True).strip()
    assert c.prompt_tokens == len(ids)
