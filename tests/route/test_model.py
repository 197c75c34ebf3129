"""The intent classifier: its parts on their own (fast), then the real training (slow)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import InputError, ModelError, NotFound
from ragtune.route.contrastive import _BatchSampler, pair_loss
from ragtune.route.data import IntentExample, load_intents
from ragtune.route.model import IntentRouter, LinearHead, RouterTrainConfig
from ragtune.route.policy import decide

from ..conftest import EXAMPLES
from .conftest import ROUTES

HELDOUT = EXAMPLES / "intents" / "intents_heldout.jsonl"


# ---------------------------------------------------------------- parts (fast)


def test_pair_loss_pulls_same_labels_together_and_pushes_others_apart() -> None:
    import torch

    e = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.1, 1.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    loss = pair_loss(e, y)
    loss.backward()
    assert 0 < loss.item() < 1
    # gradient descent moves row 1 towards row 0 (same label) and away from rows 2, 3
    moved = torch.nn.functional.normalize(e - 0.1 * e.grad, dim=-1).detach()
    before = torch.nn.functional.normalize(e, dim=-1).detach()
    assert moved[1] @ moved[0] > before[1] @ before[0]
    assert moved[1] @ moved[2] < before[1] @ before[2]
    # positives and negatives weigh the same however many there are of each
    many_neg = torch.eye(8)  # 8 labels, orthogonal: negatives perfect, no positives
    assert float(pair_loss(many_neg, torch.arange(8))) == 0.0


def test_linear_head_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    for n_labels in (2, 4):
        x = rng.normal(size=(60, 8))
        y = np.arange(60) % n_labels
        x[np.arange(60), y] += 2.0
        head = LinearHead.fit(x, y, c=10.0, seed=0)
        ref = LogisticRegression(C=10.0, max_iter=5000, random_state=0).fit(x, y)
        np.testing.assert_allclose(head.proba(x), ref.predict_proba(x), atol=1e-9)


def test_batches_cover_every_label_with_positive_pairs() -> None:
    labels = [i % 7 for i in range(100)]
    sampler = _BatchSampler(labels, batch_size=28, per_label=4, seed=0)
    seen: Counter[int] = Counter()
    for _ in range(25):
        batch = sampler.next()
        assert len(batch) == len(set(batch)) == 28
        by_label = Counter(labels[i] for i in batch)
        assert len(by_label) == 7 and set(by_label.values()) == {4}
        seen.update(batch)
    # 700 draws over 100 questions: every question used, none hugely more than others
    assert len(seen) == 100 and max(seen.values()) - min(seen.values()) <= 2


def test_train_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="runtime must be onnx or torch"):
        RouterTrainConfig(runtime="tf")
    with pytest.raises(ValueError, match="steps must be >= 0"):
        RouterTrainConfig(steps=-1)


def test_training_refuses_data_it_cannot_learn_from_before_loading_a_model() -> None:
    ex = [IntentExample("hi", "direct"), IntentExample("hello", "direct"),
          IntentExample("vpn down", "it")]
    with pytest.raises(InputError, match="label 'it' has 1 example"):
        IntentRouter.train(ex, config=RouterTrainConfig(base_model="/nonexistent/model"))


def test_load_reports_missing_and_damaged_routers(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no router at"):
        IntentRouter.load(tmp_path / "nothing")
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "router.json").write_text(json.dumps({"format": 1, "labels": ["a", "b", "c"]}))
    (folder / "head.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="router files are damaged"):
        IntentRouter.load(folder)
    np.savez(folder / "head.npz", coef=np.zeros((2, 4)), intercept=np.zeros(2))
    with pytest.raises(ModelError, match="head.npz has 2 rows for 3 labels"):
        IntentRouter.load(folder)
    (folder / "router.json").write_text(json.dumps({"format": 99, "labels": ["a", "b"]}))
    with pytest.raises(ModelError, match="router format 99 is not 1"):
        IntentRouter.load(folder)


# ---------------------------------------------------------------- the real thing (slow)


@pytest.mark.slow
@pytest.mark.integration
def test_training_learns_intents_it_never_saw(trained_router) -> None:
    router, report, _folder = trained_router
    m = report["metrics"]
    # chance is 1/7; the held-out split and a separately written set both route well
    assert m["examples"] == 28 and m["accuracy"] >= 0.6 and m["macro_f1"] >= 0.55, m
    held = load_intents(HELDOUT)
    predicted = [p[0] for p in router.predict_many([e.text for e in held])]
    accuracy = sum(p == e.label for p, e in zip(predicted, held, strict=True)) / len(held)
    assert accuracy >= 0.8, accuracy
    assert report["training"]["steps"] == RouterTrainConfig().steps
    assert report["training"]["last_loss"] < report["training"]["first_loss"]
    assert sum(map(sum, m["confusion"]["matrix"])) == 28
    assert report["counts"]["validation"] == {label: 4 for label in report["labels"]}
    label, confidence, probs = router.predict("Good afternoon!")
    assert label == "direct" and probs[label] == confidence == max(probs.values())
    assert abs(sum(probs.values()) - 1) < 1e-9
    with pytest.raises(InputError, match="empty question"):
        router.predict("  ")


@pytest.mark.slow
@pytest.mark.integration
def test_saved_router_predicts_exactly_as_trained(trained_router, tmp_path: Path) -> None:
    router, report, folder = trained_router
    info = json.loads((folder / "router.json").read_text())
    assert info["labels"] == sorted(info["labels"]) == router.labels
    assert info["kinds"]["direct"] == "direct" and info["kinds"]["hr"] == "knowledge"
    assert info["runtime"] == "onnx" and info["base_model"] == "all-MiniLM-L6-v2"
    assert info["metrics"]["confusion"] == report["metrics"]["confusion"]
    assert len(info["data"]["examples_sha256"]) == 64 and info["created_at"] > 0
    assert {"body", "onnx", "head.npz", "router.json"} <= {p.name for p in folder.iterdir()}
    # a copy elsewhere loads too (nothing points back at the training folder)
    moved = shutil.copytree(folder, tmp_path / "moved")
    loaded = IntentRouter.load(moved)
    texts = [e.text for e in load_intents(HELDOUT)][:30]
    for (l1, c1, p1), (l2, c2, p2) in zip(router.predict_many(texts), loaded.predict_many(texts),
                                          strict=True):
        assert l1 == l2 and c1 == pytest.approx(c2, abs=1e-6)
        assert p1 == pytest.approx(p2, abs=1e-6)


@pytest.mark.slow
@pytest.mark.integration
def test_real_router_through_the_policy_keeps_hr_hidden(trained_router, kb_ws) -> None:
    from ragtune.config import RoutingSettings

    router = trained_router[0]
    routing = RoutingSettings(router="intents", min_confidence=0.0, routes=ROUTES)
    q = "How many vacation days do I get?"

    def for_user(user):
        return decide(router, q, routing=routing, principal=kb_ws.principal(user),
                      store=kb_ws.store)

    assert (for_user("ana").label, for_user("ana").collections) == ("hr", ("hr",))
    hidden = for_user("bob")
    assert (hidden.label, hidden.collections) == ("knowledge", None)
    assert "hr" not in json.dumps(hidden.to_dict())
    assert for_user(None).kind == "knowledge"
    assert decide(router, "Who won the World Series in 2020?", routing=routing,
                  principal=kb_ws.principal(None), store=kb_ws.store).kind == "out_of_scope"
