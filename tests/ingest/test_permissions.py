"""Who may read a document changes only when someone says so (issue 17, permissions 1-2).

Real SQLite store, fake embedder; the attack scenarios of the issue, as a careless user
would run them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.embed.fake import FakeEmbedder
from ragtune.ingest.sync import ingest_paths, stricter_groups
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Principal
from tests.conftest import write

ANON = Principal.anonymous()
ANA = Principal("ana", groups=frozenset({"hr"}))
SECRET = "A senior engineer earns between 120000 and 150000 zorkmids."


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    write(tmp_path / "hr" / "salary.md", f"# Salaries\n\n## Bands\n\n{SECRET}\n")
    write(tmp_path / "wiki" / "tents.md", "# Tents\n\nOur tents are waterproof.\n")
    return tmp_path


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "store.db")


def ingest(store, *paths, **kw):
    return ingest_paths(list(paths), store=store, embedder=FakeEmbedder(dimension=32), **kw)


def readable(store: SQLiteStore, who: Principal) -> bool:
    return any("zorkmids" in h.chunk.text for h in store.lexical_search("zorkmids", 5, who))


def salary(store: SQLiteStore, kb: Path):
    return store.get_document(str((kb / "hr" / "salary.md").resolve()))


def test_reingesting_a_restricted_file_without_group_keeps_its_groups(kb, store):
    ingest(store, kb / "hr", groups=["hr"])
    assert readable(store, ANA) and not readable(store, ANON)
    (kb / "hr" / "salary.md").write_text(f"# Salaries\n\n## Bands\n\n{SECRET} Reviewed.\n")
    report = ingest(store, kb / "hr" / "salary.md")  # no --group: the "1 updated"
    assert len(report.updated) == 1 and report.regrouped == []
    assert salary(store, kb).groups == ("hr",)
    assert not readable(store, ANON), "re-ingesting without --group published the file"
    assert ingest(store, kb / "hr").unchanged  # unchanged bytes: still nothing to do


def test_public_and_group_change_who_reads_and_say_so(kb, store):
    ingest(store, kb / "hr", groups=["hr"])
    report = ingest(store, kb / "hr", groups=())  # --public
    src = str((kb / "hr" / "salary.md").resolve())
    assert report.regrouped == [(src, ("hr",), ())]
    assert report.group_changes() == [f"{src}: hr -> public"]
    assert report.to_dict()["groups_changed"] == [{"path": src, "from": ["hr"], "to": []}]
    assert readable(store, ANON)
    back = ingest(store, kb / "hr", groups=["hr", "finance"])
    assert back.regrouped == [(src, (), ("finance", "hr"))] and not readable(store, ANON)
    assert ingest(store, kb / "hr", groups=["hr", "finance"]).regrouped == []
    log = [e.message for e in store.ingest_log(10) if e.source == src]
    assert any("groups public -> finance,hr" in m for m in log)


def test_a_symlink_to_a_restricted_file_is_refused_by_default(kb, store):
    ingest(store, kb / "hr", groups=["hr"])
    (kb / "wiki" / "notes.md").symlink_to(Path("..") / "hr" / "salary.md")
    report = ingest(store, kb / "wiki")
    failed = dict(report.failed)
    assert "outside" in failed[str(kb / "wiki" / "notes.md")]
    assert "--follow-symlinks" in failed[str(kb / "wiki" / "notes.md")]
    assert [Path(s).name for s in report.added] == ["tents.md"]
    assert salary(store, kb).groups == ("hr",) and not readable(store, ANON)
    # named on the command line, the link is judged against its own folder just the same
    assert "outside" in dict(ingest(store, kb / "wiki" / "notes.md").failed)[
        str(kb / "wiki" / "notes.md")]
    # ... also when ingested with --public: the link never publishes the target
    assert "outside" in dict(ingest(store, kb / "wiki", groups=()).failed)[
        str(kb / "wiki" / "notes.md")]
    assert not readable(store, ANON)


def test_following_a_symlink_takes_the_stricter_groups(kb, store):
    ingest(store, kb / "hr", groups=["hr"])
    (kb / "wiki" / "notes.md").symlink_to(Path("..") / "hr" / "salary.md")
    # a public wiki ingest that follows the link: the target stays hr-only
    report = ingest(store, kb / "wiki", groups=(), follow_symlinks=True)
    assert report.failed == [] and salary(store, kb).groups == ("hr",)
    assert not readable(store, ANON) and readable(store, ANA)
    # a broader group set than the target's: the target's (narrower) set wins
    ingest(store, kb / "wiki", groups=["hr", "it"], follow_symlinks=True)
    assert salary(store, kb).groups == ("hr",)
    # unrelated groups: neither is stricter, so it is refused with a reason
    report = ingest(store, kb / "wiki", groups=["it"], follow_symlinks=True)
    problem = dict(report.failed)[str(kb / "wiki" / "notes.md")]
    assert "restricted to hr" in problem and "--group" in problem
    assert salary(store, kb).groups == ("hr",)


def test_a_symlinked_folder_outside_is_refused_and_one_inside_is_not_doubled(kb, store):
    (kb / "wiki" / "hr-link").symlink_to(kb / "hr", target_is_directory=True)
    (kb / "wiki" / "same").symlink_to(kb / "wiki", target_is_directory=True)
    report = ingest(store, kb / "wiki")
    assert [Path(p).name for p, _ in report.failed] == ["hr-link"]
    assert "outside" in report.failed[0][1]
    assert [Path(s).name for s in report.added] == ["tents.md"]
    assert not readable(store, ANON)
    followed = ingest(store, kb / "wiki", follow_symlinks=True)
    assert [Path(s).name for s in followed.added] == ["salary.md"] and followed.failed == []


def test_stricter_groups_rules():
    assert stricter_groups((), ()) == ()
    assert stricter_groups(("hr",), ()) == ("hr",)
    assert stricter_groups(("a", "b"), ("b", "a")) == ("a", "b")
    assert stricter_groups(("hr",), ("hr", "it")) == ("hr",)
    assert stricter_groups(("hr",), ("it",)) is None
