"""FakeEmbedder: deterministic across processes, meaningful similarities."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ragtune.embed.fake import FakeEmbedder


def test_same_vectors_in_another_process() -> None:
    # Python's hash() is salted per process; the fake must not depend on it.
    code = (
        "from ragtune.embed.fake import FakeEmbedder;"
        "print(FakeEmbedder(16).embed_query('stable hashing please').round(6).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = FakeEmbedder(16).embed_query("stable hashing please").round(6).tolist()
    assert eval(out.stdout) == here


def test_shared_words_give_high_cosine_and_disjoint_words_low() -> None:
    e = FakeEmbedder()
    a, b, c = e.embed_documents(
        ["Parental leave policy for employees", "employees parental leave", "quarterly tax filing"]
    )
    assert a @ b > 0.6
    assert abs(a @ c) < 0.2


def test_case_and_punctuation_do_not_matter() -> None:
    e = FakeEmbedder()
    np.testing.assert_allclose(e.embed_query("Hello, World!"), e.embed_query("hello world"))


def test_word_order_matters_a_little_through_bigrams() -> None:
    e = FakeEmbedder()
    a, b = e.embed_documents(["dog bites man", "man bites dog"])
    assert 0.5 < a @ b < 0.999
    a, b = FakeEmbedder(bigrams=False).embed_documents(["dog bites man", "man bites dog"])
    assert a @ b == pytest.approx(1.0)


def test_count_tokens_counts_words_and_punctuation() -> None:
    # It ' s 3 . 14 , isn ' t it ?
    assert FakeEmbedder().count_tokens("It's 3.14, isn't it?") == 12
    assert FakeEmbedder().count_tokens("") == 0


def test_rejects_bad_dimension() -> None:
    with pytest.raises(ValueError, match="dimension"):
        FakeEmbedder(dimension=0)
