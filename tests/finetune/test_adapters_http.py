"""Adapters served by an OpenAI-compatible server, addressed by model name.

With ``generation.backend = "http"`` the modes ``finetuned`` and ``hybrid`` (and ``rag`` with
an adapter) send the adapter's name as the request's ``model`` (vLLM's ``--lora-modules
NAME=PATH``); ``generation.adapter_models`` maps a name the server spells differently.

The first tests run a small FastAPI server that records each request's ``model``. The last
ones start the real ``python -m llama_cpp.server`` with a config file that serves the tiny
Llama (as a GGUF, converted in ``tiny_gguf.py``) under ``tiny`` and the tiny model plus the
trained ``style`` LoRA (exported by ragtune to GGUF) under ``style``: the adapter's answers
end with the marker it was trained on, the base model's do not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ragtune.errors import ModelError
from ragtune.types import Route
from tests.conftest import FAKE, free_port, serve_in_thread, server_process
from tests.finetune.conftest import MARKER

QUESTION = "How do I request my refund? (case 1)"


# ---------------------------------------------------------------- request shape (fake server)


def _app(models: list[str], *, listed: bool = True) -> FastAPI:
    """Serves ``models`` (listed at ``/models`` if ``listed``); others get vLLM's 404."""
    app = FastAPI()
    app.state.seen = []

    @app.get("/v1/models")
    async def model_list():
        if not listed:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return {"object": "list", "data": [{"id": m, "object": "model"} for m in models]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        app.state.seen.append(body["model"])
        if body["model"] not in models:
            return JSONResponse({"object": "error", "type": "NotFoundError", "code": 404,
                                 "message": f"The model `{body['model']}` does not exist."},
                                status_code=404)
        text = f"answered by {body['model']}."
        if body.get("stream"):
            from fastapi.responses import StreamingResponse

            chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
            return StreamingResponse(iter([f"data: {json.dumps(chunk)}\n\n", "data: [DONE]\n\n"]),
                                     media_type="text/event-stream")
        return {"choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]}

    return app


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, FastAPI]]:
    app = _app(["base", "style", "style-v2"])
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def unlisted_server() -> Iterator[tuple[str, FastAPI]]:
    """A server without a ``/models`` list that knows only the model ``other``."""
    app = _app(["other"], listed=False)
    with serve_in_thread(app) as url:
        yield url, app


def _register(root: Path, name: str, base: str = "tiny-base") -> None:
    """A finished adapter as the registry lists it (weights are the server's business)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (folder / "run.json").write_text(json.dumps({"name": name, "base_model": base,
                                                 "dataset": {"system_prompt": ""}}))


def _ws(tmp_path: Path, url: str, model: str = "base", **generation: object):
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE | {"generation": {
        "backend": "http", "base_url": url, "model": model, "max_tokens": 16, **generation}})
    for name in ("style", "ghost"):
        _register(ws.adapters_root, name)
    return ws


def test_modes_send_the_adapter_name_as_the_model(fake_server, tmp_path: Path) -> None:
    url, app = fake_server
    ws = _ws(tmp_path, url)
    ws.routing = lambda q, p: Route("chat", "direct", 0.9, None, "test")
    app.state.seen.clear()
    finetuned = ws.ask(QUESTION, mode="finetuned", adapter="style")
    base = ws.ask(QUESTION, mode="base")
    hybrid = ws.ask(QUESTION, mode="hybrid", adapter="style")
    streamed: list[str] = []
    ws.ask(QUESTION, mode="finetuned", adapter="style", on_token=streamed.append)
    assert app.state.seen == ["style", "base", "style", "style"]
    assert finetuned.text == "answered by style." and finetuned.trace.adapter == "style"
    assert finetuned.trace.model == "style" and base.trace.model == "base"
    assert hybrid.trace.adapter == "style" and "".join(streamed) == "answered by style."


def test_adapter_models_maps_a_name_the_server_spells_differently(fake_server, tmp_path: Path) -> None:
    url, app = fake_server
    ws = _ws(tmp_path, url, adapter_models={"style": "style-v2"})
    app.state.seen.clear()
    assert ws.ask(QUESTION, mode="finetuned", adapter="style").text == "answered by style-v2."
    assert app.state.seen == ["style-v2"]


def test_an_adapter_the_server_does_not_list_is_a_clear_error(fake_server, tmp_path: Path) -> None:
    url, app = fake_server
    ws = _ws(tmp_path, url)
    app.state.seen.clear()
    with pytest.raises(ModelError, match=rf"adapter 'ghost' is not served by {url}: it serves "
                                         r"base, style, style-v2\. .*--lora-modules ghost=") as e:
        ws.ask(QUESTION, mode="finetuned", adapter="ghost")
    assert "generation.adapter_models" in str(e.value)
    assert app.state.seen == []  # asked GET /models only: no answer from another model
    ws = _ws(tmp_path / "mapped", url, adapter_models={"style": "gone"})
    with pytest.raises(ModelError, match="adapter 'style' as model 'gone' is not served by"):
        ws.ask(QUESTION, mode="finetuned", adapter="style")


def test_without_a_models_list_the_servers_json_error_names_the_adapter(
        unlisted_server, tmp_path: Path) -> None:
    url, app = unlisted_server
    ws = _ws(tmp_path, url)
    app.state.seen.clear()
    # Without a list nothing is checked up front; the server's 404 body says what is wrong.
    with pytest.raises(ModelError, match=rf"adapter 'ghost' is not served by {url}: HTTP 404: "
                                         r"The model `ghost` does not exist\."):
        ws.ask(QUESTION, mode="finetuned", adapter="ghost")
    with pytest.raises(ModelError, match=rf"adapter 'style' is not served by {url}: HTTP 404"):
        list(ws.adapters.generator("style").stream([{"role": "user", "content": "hi"}]))
    assert app.state.seen == ["ghost", "style"]
    with pytest.raises(ModelError, match=r"HTTP 404: The model `base` does not exist\. \(check "
                                         "generation.base_url"):  # the base model: as before
        ws.ask(QUESTION, mode="base")


def test_empty_adapter_model_name_is_a_config_error() -> None:
    from ragtune.config import GenerationSettings
    from ragtune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"generation.adapter_models.style' is empty"):
        GenerationSettings(backend="http", base_url="http://x/v1", adapter_models={"style": " "})


# ---------------------------------------------------------------- export --format peft


def test_export_peft_is_a_plain_folder_peft_loads(tmp_path: Path) -> None:
    """Only what PEFT and vLLM read plus the lineage; PeftModel.from_pretrained gives the
    adapter's own outputs."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from ragtune.finetune.adapters import AdapterRegistry

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                         num_attention_heads=2)
    original = LlamaForCausalLM(config)
    weights = {k: v.clone() for k, v in original.state_dict().items()}
    peft = get_peft_model(original, LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    registry = AdapterRegistry(tmp_path / "adapters")
    folder = registry.path_for("style")
    peft.save_pretrained(str(folder))
    (folder / "run.json").write_text(json.dumps({"name": "style", "base_model": "tiny"}))
    (folder / "adapter.gguf").write_bytes(b"GGUF")  # another format: not part of the export
    (folder / "checkpoints").mkdir()
    out = registry.export("style", tmp_path / "out", fmt="peft")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "run.json"]
    base = LlamaForCausalLM(config)
    base.load_state_dict(weights)
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        want = peft.eval()(ids).logits
        got = PeftModel.from_pretrained(base, str(out)).eval()(ids).logits
    assert torch.allclose(got, want, atol=1e-5)


# ---------------------------------------------------------------- the real llama.cpp server


@pytest.mark.integration
def test_the_tiny_gguf_is_the_tiny_model(tiny_model_dir: Path, tiny_tokenizer, tmp_path: Path) -> None:
    """The server's base (tiny_gguf.py): llama.cpp tokenizes a chat prompt as the HF
    tokenizer does and computes the HF model's logits (f32: differences ~1.5e-3; without the q/k row order 5e-2)."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    import numpy as np
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM

    from tests.finetune.tiny_gguf import tiny_llama_gguf

    path = tiny_llama_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    prompt = tiny_tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}],
                                                add_generation_prompt=True, tokenize=False)
    ids = tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    llm = Llama(model_path=str(path), n_ctx=128, n_threads=1, logits_all=True, verbose=False)
    assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == ids
    llm.eval(ids)
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(torch.tensor([ids])).logits[0]
    np.testing.assert_allclose(np.array(llm.scores[: len(ids)]), want.numpy(), atol=5e-3)


@pytest.fixture(scope="module")
def lora_server(trained_adapter, tiny_model_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``llama_cpp.server`` serving the tiny GGUF as ``tiny`` and tiny + the trained LoRA as
    ``style``; yields (base URL, adapter registry folder holding ``style``)."""
    for module in ("llama_cpp", "sse_starlette", "starlette_context", "pydantic_settings", "gguf"):
        pytest.importorskip(module)
    from ragtune.generate.llama_cpp import runnable_here

    if problem := runnable_here():
        pytest.skip(problem)
    from ragtune.finetune.adapters import AdapterRegistry
    from tests.finetune.tiny_gguf import tiny_llama_gguf

    folder = tmp_path_factory.mktemp("lora-server")
    registry = AdapterRegistry(folder / "adapters")
    shutil.copytree(trained_adapter[0].adapter_dir, registry.path_for("style"))
    lora = registry.export_gguf("style")  # what `ragtune adapters export style --format gguf` writes
    base = tiny_llama_gguf(tiny_model_dir, folder / "tiny.gguf")
    common = {"model": str(base), "n_ctx": 512, "n_threads": 1, "n_batch": 128, "verbose": False}
    config = folder / "server.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": (port := free_port()), "models": [
        common | {"model_alias": "tiny"},
        common | {"model_alias": "style", "lora_path": str(lora)}]}))
    with server_process([sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
                        f"http://127.0.0.1:{port}/v1/models", timeout_s=60):
        yield f"http://127.0.0.1:{port}/v1", registry.root


@pytest.fixture
def server_ws(lora_server, tmp_path: Path):
    from ragtune.workspace import Workspace

    url, adapters = lora_server
    ws = Workspace.init(tmp_path / "ws", overrides=FAKE | {"generation": {
        "backend": "http", "base_url": url, "model": "tiny", "max_tokens": 40}})
    shutil.copytree(adapters / "style", ws.adapters_root / "style", ignore=shutil.ignore_patterns("*.gguf"))
    shutil.copytree(ws.adapters_root / "style", ws.adapters_root / "ghost")
    for name in ("style", "ghost"):  # the fixture's lineage names a document this store lacks
        run = ws.adapters_root / name / "run.json"
        run.write_text(json.dumps(json.loads(run.read_text()) | {"lineage": None}))
    return ws


@pytest.mark.integration
def test_real_llama_cpp_server_answers_with_the_adapter_by_name(server_ws) -> None:
    ws = server_ws
    tuned = ws.ask(QUESTION, mode="finetuned", adapter="style")
    base = ws.ask(QUESTION, mode="base")
    # Only the LoRA the server applies under 'style' writes the trained marker.
    assert MARKER in tuned.text, tuned.text
    assert MARKER not in base.text and base.text != tuned.text, base.text
    assert (tuned.trace.model, tuned.trace.adapter, base.trace.model) == ("style", "style", "tiny")
    ws.routing = lambda q, p: Route("chat", "direct", 0.9, None, "test")
    streamed: list[str] = []
    hybrid = ws.ask(QUESTION, mode="hybrid", adapter="style", on_token=streamed.append)
    assert MARKER in hybrid.text and hybrid.trace.adapter == "style" and len(streamed) > 1


@pytest.mark.integration
def test_real_llama_cpp_server_unknown_adapter_is_a_clear_error(server_ws) -> None:
    ws = server_ws
    url = ws.settings.generation.base_url
    # llama-cpp-python's server answers an unknown model with its default model (the base):
    # ragtune checks GET /models first, so 'ghost' is an error, not the base in disguise.
    with pytest.raises(ModelError, match=rf"adapter 'ghost' is not served by {url}: it serves "
                                         r"tiny, style\."):
        ws.ask(QUESTION, mode="finetuned", adapter="ghost")
    from ragtune.workspace import Workspace

    mapped = Workspace.open(ws.root, overrides={"generation": {"adapter_models": {"ghost": "style"}}})
    assert MARKER in mapped.ask(QUESTION, mode="finetuned", adapter="ghost").text


@pytest.mark.integration
def test_real_llama_cpp_server_through_the_cli(server_ws) -> None:
    """What a user runs: ``ragtune ask --mode finetuned --adapter NAME`` on an http workspace."""
    def ask(adapter: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ragtune.cli", "ask", QUESTION, "--mode",
                               "finetuned", "--adapter", adapter, "-w", str(server_ws.root), "--json"],
                              capture_output=True, text=True, timeout=120, check=False,
                              env=os.environ | {"COLUMNS": "300"})

    ok = ask("style")
    assert ok.returncode == 0, ok.stderr
    answer = json.loads(ok.stdout)
    assert MARKER in answer["answer"] and answer["trace"]["model"] == "style"
    missing = ask("ghost")
    assert missing.returncode == ModelError.exit_code and not missing.stdout
    assert f"adapter 'ghost' is not served by {server_ws.settings.generation.base_url}" in missing.stderr
