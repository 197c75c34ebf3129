"""Issue 17 item 4: an adapter answers only those who may read everything it learned from."""

from __future__ import annotations

import json

import pytest

from ragtune.errors import AccessDenied
from ragtune.finetune.access import required_groups, with_groups
from tests.conftest import write
from tests.evaluate.conftest import add_adapter

SALARY = "# Salary bands\n\nThe senior engineer salary band is 91,000 to 118,000 euros.\n"
RETURNS = "# Returns\n\nCustomers may return items within 30 days of delivery for a refund.\n"


@pytest.fixture
def ws(fake_ws, tmp_path, monkeypatch):
    fake_ws.ingest([write(tmp_path / "kb" / "hr" / "salary.md", SALARY)], groups=["hr"])
    fake_ws.ingest([write(tmp_path / "kb" / "returns.md", RETURNS)])
    salary = str((tmp_path / "kb" / "hr" / "salary.md").resolve())
    returns = str((tmp_path / "kb" / "returns.md").resolve())
    add_adapter(fake_ws, "hr-tuned", trained_on=(salary, returns))
    add_adapter(fake_ws, "public-tuned", trained_on=(returns,))
    monkeypatch.setattr(fake_ws.adapters, "generator", lambda adapter: fake_ws.generator)
    fake_ws.salary, fake_ws.returns = salary, returns
    return fake_ws


def test_an_outsider_is_refused_an_adapter_trained_on_restricted_documents(ws) -> None:
    for user in (None, "bob"):
        for mode in ("finetuned", "hybrid", "rag"):
            with pytest.raises(AccessDenied, match="may not read") as e:
                ws.ask("What is the salary band?", user, mode=mode, adapter="hr-tuned")
            assert "salary" not in str(e.value)  # the refusal names no document
    assert ws.store.traces() == []  # nothing was answered, so nothing recorded


def test_members_and_admins_may_use_it_and_everyone_the_public_one(ws) -> None:
    assert ws.ask("What is the salary band?", "ana", mode="finetuned", adapter="hr-tuned")
    assert ws.ask("What is the salary band?", "root", mode="finetuned", adapter="hr-tuned")
    assert ws.ask("Can I return items?", "bob", mode="finetuned", adapter="public-tuned")
    assert not ws.adapters.usable("hr-tuned", ws.principal("bob"))
    assert ws.adapters.usable("hr-tuned", ws.principal("ana"))


def test_a_document_restricted_after_training_restricts_the_adapter(ws, tmp_path) -> None:
    ws.ingest([tmp_path / "kb" / "returns.md"], groups=["legal"])  # now restricted
    with pytest.raises(AccessDenied):
        ws.ask("Can I return items?", "bob", mode="finetuned", adapter="public-tuned")


def test_recorded_groups_outlive_the_document(ws) -> None:
    lineage = with_groups({"documents": [{"source": ws.salary, "version": 1},
                                         {"source": ws.returns, "version": 1}]}, ws.store)
    assert [d.get("groups") for d in lineage["documents"]] == [["hr"], []]
    run = ws.registry.path_for("hr-tuned") / "run.json"
    data = json.loads(run.read_text()) | {"lineage": lineage}
    run.write_text(json.dumps(data))
    ws.remove(ws.salary)  # the store no longer knows the document's groups
    assert required_groups(ws.registry.get("hr-tuned"), ws.store) == [("hr",)]
    with pytest.raises(AccessDenied):
        ws.ask("What is the salary band?", "bob", mode="finetuned", adapter="hr-tuned")
