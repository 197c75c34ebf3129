"""HFGenerator on the tiny random Llama: chat generation, streaming, adapter switching."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from ragtune.errors import ConfigError, ModelError, NotFound
from ragtune.finetune.hf_generator import HFGenerator
from ragtune.generate.base import Generator
from tests.contracts.generator import GeneratorContract

from .conftest import MARKER, style_examples

QUESTIONS = [r["messages"][0]["content"] for r in style_examples(4, seed=4242)]


def _ask(g: HFGenerator, q: str) -> str:
    return g.complete([{"role": "user", "content": q}], max_tokens=40).text


@pytest.fixture()
def gen(tiny_model_dir: Path, adapters_root: Path) -> HFGenerator:
    return HFGenerator(str(tiny_model_dir), adapters_root=adapters_root, max_tokens=40)


def test_generates_and_streams_with_counts(gen: HFGenerator) -> None:
    assert isinstance(gen, Generator)
    msgs = [{"role": "user", "content": QUESTIONS[0]}]
    done = gen.complete(msgs)
    assert done.prompt_tokens > 5 and 1 <= done.completion_tokens <= 40
    assert 0 < done.timings["first_token_s"] <= done.timings["total_s"]
    pieces = list(gen.stream(msgs))
    assert len(pieces) > 1 and "".join(pieces).strip() == done.text
    assert gen.last_completion is not None and gen.last_completion.text == done.text
    assert gen.complete(msgs, max_tokens=3).completion_tokens <= 3


def test_adapter_changes_output_and_switching_does_not_reload(gen: HFGenerator) -> None:
    before = [_ask(gen, q) for q in QUESTIONS]  # plain base, no PEFT wrapper yet
    assert not any(a.endswith(MARKER) for a in before)
    base_model = gen.base.model
    gen.use_adapter("style")
    assert gen.name.endswith("+style")
    styled = [_ask(gen, q) for q in QUESTIONS]
    assert all(a.endswith(MARKER) for a in styled), styled
    gen.use_adapter("other")
    other = _ask(gen, QUESTIONS[0])
    gen.use_adapter(None)
    assert [_ask(gen, q) for q in QUESTIONS] == before  # disable_adapter gives the base back
    t = time.perf_counter()
    gen.use_adapter("other")
    gen.use_adapter("style")
    switch_s = time.perf_counter() - t
    assert switch_s < 1.0
    assert gen.base.model is base_model and gen._peft.base_model.model is base_model
    assert gen.loaded_adapters == ["other", "style"]
    assert [_ask(gen, q) for q in QUESTIONS] == styled
    assert other != styled[0]
    with gen.activated(None):  # temporary switch, restored after
        assert gen.adapter is None
    assert gen.adapter == "style"


def test_refuses_an_adapter_of_another_base(gen: HFGenerator, adapters_root: Path,
                                            tmp_path: Path) -> None:
    shutil.copytree(adapters_root / "style", tmp_path / "alien")
    run = json.loads((tmp_path / "alien" / "run.json").read_text())
    run |= {"base_model": "someone/other-model", "base_model_hash": "folder:abc",
            "base_model_path": str(tmp_path)}
    (tmp_path / "alien" / "run.json").write_text(json.dumps(run))
    g = HFGenerator(gen.base_model, adapters_root=tmp_path)
    with pytest.raises(ModelError, match="someone/other-model.*this generator serves") as e:
        g.use_adapter("alien")
    assert gen.base_model in str(e.value)
    with pytest.raises(NotFound, match="alien"):
        g.use_adapter("nope")
    with pytest.raises(ConfigError, match="adapters_root"):
        HFGenerator(gen.base_model).use_adapter("style")
    with pytest.raises(ConfigError, match="max_tokens"):
        HFGenerator(gen.base_model, max_tokens=0)


@pytest.mark.slow
@pytest.mark.integration
def test_real_qwen_trains_three_steps_and_serves_the_adapter(tmp_path: Path) -> None:
    """The packaged Qwen2.5-0.5B: 3 LoRA steps on the sample style data, then one answer."""
    from ragtune.errors import MissingDependency
    from ragtune.finetune.adapters import AdapterRegistry
    from ragtune.finetune.train import TrainConfig, train_adapter

    from ..conftest import EXAMPLES

    try:
        from ragtune.generate.models import packaged_model_path

        packaged_model_path()
    except MissingDependency as e:
        pytest.skip(str(e))
    config = TrainConfig(base_model="qwen2.5-0.5b", max_steps=3, batch_size=2, max_length=256,
                         early_stopping_patience=0, val_fraction=0.05)
    registry = AdapterRegistry(tmp_path / "adapters")
    result = train_adapter(config, EXAMPLES / "finetune" / "support_style.jsonl",
                           registry.path_for("style"))
    assert [a.name for a in registry.list()] == ["style"] and result.run["steps"] == 3
    assert result.run["base_model_hash"].startswith("sha256:1d9614638d18")
    gen = HFGenerator("qwen2.5-0.5b", adapters_root=registry.root, max_tokens=48)
    prompt = json.loads((EXAMPLES / "finetune" / "heldout_prompts.jsonl").read_text().splitlines()[0])
    gen.use_adapter("style")
    done = gen.complete(prompt["messages"][:-1])
    assert done.text and done.completion_tokens > 0
    print(f"\nqwen: {result.run['train_time_s'] / 3:.2f} s/step, "
          f"{done.timings.get('tokens_per_s', 0):.2f} tokens/s, "
          f"first token {done.timings['first_token_s']:.2f} s: {done.text!r}")


class TestHFGeneratorContract(GeneratorContract):
    """The Generator contract on transformers + PEFT (tiny random model, greedy)."""

    @pytest.fixture
    def generator(self, tiny_model_dir: Path) -> HFGenerator:
        return HFGenerator(str(tiny_model_dir), max_tokens=24)
