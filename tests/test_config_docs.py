"""docs/configuration.md is generated from the settings dataclasses and must stay in step."""

from __future__ import annotations

import dataclasses

import pytest

from ragtune import config_docs
from ragtune.config import _AREAS, Settings
from tests.conftest import ROOT

PAGE = ROOT / "docs" / "configuration.md"


def test_the_page_is_in_step_with_the_code() -> None:
    # fails when a setting is added, renamed, re-typed, re-defaulted or re-explained without
    # running: python -m ragtune.config_docs docs/configuration.md
    assert config_docs.main(["--check", str(PAGE)]) == 0
    assert PAGE.read_text(encoding="utf-8") == config_docs.render()


def test_every_setting_is_on_the_page_with_its_help() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for area, klass in _AREAS.items():
        assert f"## `[{area}]`" in text
        for f in dataclasses.fields(klass):
            assert f.metadata.get("help"), f"{area}.{f.name} has no help text"
            row = next((line for line in text.splitlines() if line.startswith(f"| `{f.name}` |")
                        and config_docs._cell(f.metadata["help"]) in line), None)
            assert row is not None, f"{area}.{f.name}"


def test_the_defaults_on_the_page_are_the_real_defaults() -> None:
    text = PAGE.read_text(encoding="utf-8")
    defaults = Settings().to_dict()
    assert '| `top_k` | integer | `5` | `RAGTUNE_RETRIEVAL_TOP_K` |' in text
    assert f'| `mode` | string | `"{defaults["answer"]["mode"]}"` |' in text
    assert "| `users` | table: name → list of strings | `{}` | (ragtune.toml only) |" in text


def test_check_fails_on_a_stale_page(tmp_path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(config_docs.render().replace("chunks given to the model", "old text"))
    assert config_docs.main(["--check", str(stale)]) == 1


def test_the_generated_settings_file_points_at_the_page(fake_ws) -> None:
    assert "docs/configuration.md" in (fake_ws.root / "ragtune.toml").read_text()
    assert PAGE.exists()


def test_help_prints_usage_and_writes_no_file(tmp_path, monkeypatch, capsys) -> None:
    # `--help` once wrote the whole page into a file named "--help"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        config_docs.main(["--help"])
    assert stop.value.code == 0 and "usage:" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
