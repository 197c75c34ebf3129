"""Config is validated as a whole: types inside tables, finite ranges, no silent typos
(issue 17: permissions 3, bad input 12)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ragtune.config import AccessSettings, IngestSettings, Settings
from ragtune.errors import ConfigError


def load(tmp_path: Path, toml: str = "", env: dict[str, str] | None = None) -> Settings:
    cfg = tmp_path / "ragtune.toml"
    cfg.write_text(toml)
    return Settings.load(cfg, env=env or {})


@pytest.mark.parametrize(("toml", "key"), [
    ('[access]\nusers = { ana = "hr" }\n', "access.users.ana"),  # "hr" is not h, r
    ('[access]\nusers = { ana = ["hr", 3] }\n', r"access.users.ana\[1\]"),
    ('[access]\nusers = ["ana"]\n', "access.users"),
    ('[access]\nadmins = "root"\n', "access.admins"),
    ('[access]\nadmins = [["root"]]\n', r"access.admins\[0\]"),
    ('[access]\nusers = { ana = [""] }\n', "access.users.ana"),
    ('[routing]\nroutes = { hr = "hr" }\n', "routing.routes.hr"),
    ('[costs]\nhosted = { gpt = ["1", 2] }\n', r"costs.hosted.gpt\[0\]"),
])
def test_access_and_other_tables_are_checked_by_type(tmp_path, toml, key):
    with pytest.raises(ConfigError, match=key):
        load(tmp_path, toml)


def test_a_string_for_a_group_list_is_refused_when_built_directly_too():
    with pytest.raises(ConfigError, match="access.users.ana' must be a list of strings, got 'hr'"):
        AccessSettings(users={"ana": "hr"})  # type: ignore[dict-item]
    ok = AccessSettings(users={"ana": ["hr"]}, admins=["root"])
    assert ok.users == {"ana": ["hr"]}


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400"])
def test_non_finite_numbers_are_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="ingest.max_file_mb.*finite"):
        load(tmp_path, env={"RAGTUNE_INGEST_MAX_FILE_MB": value})
    with pytest.raises(ConfigError, match="finite"):
        IngestSettings(max_file_mb=math.inf)


@pytest.mark.parametrize(("env", "key"), [
    ({"RAGTUNE_INGEST_MAX_FILE_MB": "0"}, "ingest.max_file_mb"),
    ({"RAGTUNE_INGEST_MAX_FILE_MB": "100000"}, "ingest.max_file_mb"),
    ({"RAGTUNE_INGEST_MAX_DEPTH": "100000"}, "ingest.max_depth"),
    ({"RAGTUNE_GENERATION_TIMEOUT_S": "0"}, "generation.timeout_s"),
    ({"RAGTUNE_GENERATION_TEMPERATURE": "-1"}, "generation.temperature"),
    ({"RAGTUNE_GENERATION_THREADS": "-2"}, "generation.threads"),
    ({"RAGTUNE_RETRIEVAL_RRF_K": "0"}, "retrieval.rrf_k"),
    ({"RAGTUNE_EMBEDDING_DIMENSION": "0"}, "embedding.dimension"),
    ({"RAGTUNE_RETRIEVAL_TOP_K": "true"}, "retrieval.top_k"),
])
def test_values_are_range_checked(tmp_path, env, key):
    with pytest.raises(ConfigError, match=key):
        load(tmp_path, env=env)


def test_a_misspelled_section_in_the_environment_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="RAGTUNE_RETREIVAL_TOP_K names no config section"):
        load(tmp_path, env={"RAGTUNE_RETREIVAL_TOP_K": "8"})
    with pytest.raises(ConfigError, match="retrieval.top_kk"):  # a known section, bad key
        load(tmp_path, env={"RAGTUNE_RETRIEVAL_TOP_KK": "8"})
    with pytest.raises(ConfigError, match="only be set in ragtune.toml"):
        load(tmp_path, env={"RAGTUNE_ACCESS_USERS": "ana"})
    # variables that are not settings, and everything else, are left alone
    s = load(tmp_path, env={"RAGTUNE_HOME": "/x", "RAGTUNE_CACHE": "/y", "PATH": "/bin",
                            "RAGTUNE_RETRIEVAL_TOP_K": "8"})
    assert s.retrieval.top_k == 8


def test_good_config_still_loads(tmp_path):
    s = load(tmp_path, '[access]\nusers = { ana = ["hr"], bob = [] }\nadmins = ["root"]\n'
                       '[ingest]\nmax_file_mb = 10\nmax_depth = 64\n'
                       '[costs]\nhosted = { gpt = [1, 2.5] }\n')
    assert s.access.users == {"ana": ["hr"], "bob": []} and s.ingest.max_file_mb == 10.0
    assert s.costs.hosted == {"gpt": [1, 2.5]}
    assert Settings.from_dict(s.to_dict()) == s
