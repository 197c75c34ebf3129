"""Many users, one model: fair slots, admission limits with Retry-After, cancellation when
a client goes away, and search that keeps answering while the model is busy.

The model is the fake one slowed down (one word per ``delay``), so these run in seconds;
no assertion depends on timing, only on order and counts.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from openai import OpenAI

from ragtune.errors import Busy, Cancelled
from ragtune.server.gate import GenerationGate
from ragtune.server.keys import KeyStore
from tests.server.conftest import SlowGenerator, serving

LONG = " ".join(f"word{i}" for i in range(30)) + "."
Q = {"model": "ragtune-base", "messages": [{"role": "user", "content": "Tell me a story"}]}


def wait_until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


# ------------------------------------------------------------------ the gate itself

def test_slots_go_round_robin_across_users() -> None:
    gate = GenerationGate(slots=1, max_waiting=10, per_user=5)
    holder = gate.admit("ana")
    holder.acquire()
    order: list[str] = []
    threads = []
    for label in ("ana-2", "ana-3", "bob-1", "ana-4", "cy-1"):
        a = gate.admit(label.split("-")[0])

        def run(a=a, label=label) -> None:
            a.acquire()
            order.append(label)
            a.close()

        t = threading.Thread(target=run)
        t.start()
        threads.append(t)
        waiting = len(threads)
        wait_until(lambda: gate.stats()["waiting"] == waiting)  # noqa: B023 — used at once
    holder.close()
    for t in threads:
        t.join(5)
    # one each in turn, first come first served within a user
    assert order == ["ana-2", "bob-1", "cy-1", "ana-3", "ana-4"]
    assert gate.stats() == {"admitted": 0, "waiting": 0, "generating": 0, "slots": 1}


def test_admission_limits_say_when_to_retry() -> None:
    gate = GenerationGate(slots=1, max_waiting=3, per_user=2)
    gate.admit("ana"), gate.admit("ana")
    with pytest.raises(Busy) as mine:
        gate.admit("ana")
    assert mine.value.http_status == 429 and mine.value.retry_after >= 1
    gate.admit("bob")
    with pytest.raises(Busy) as everyone:
        gate.admit("cy")
    assert everyone.value.http_status == 503 and everyone.value.retry_after >= 1


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    gate = GenerationGate(slots=1, max_waiting=5, per_user=5)
    holder = gate.admit("ana")
    holder.acquire()
    waiter = gate.admit("bob")
    failed: list[BaseException] = []

    def run() -> None:
        try:
            waiter.acquire()
        except Cancelled as e:
            failed.append(e)
        finally:
            waiter.close()

    t = threading.Thread(target=run)
    t.start()
    wait_until(lambda: gate.stats()["waiting"] == 1)
    waiter.cancel()
    t.join(5)
    assert failed and gate.stats()["waiting"] == 0 and gate.stats()["admitted"] == 1
    holder.close()


# ------------------------------------------------------------------ through the server

@pytest.fixture
def slow(tmp_path):
    with serving(tmp_path, server={"max_waiting": 6, "max_waiting_per_user": 2}) as served:
        gen = SlowGenerator(delay=0.03, reply=LONG)
        served.ws.generator = gen
        yield served, gen


def test_one_generation_at_a_time_and_search_stays_responsive(slow) -> None:
    served, gen = slow
    results: list[str] = []

    def chat(user: str) -> None:
        ai = OpenAI(base_url=served.url + "/v1", api_key=served.tokens[user], max_retries=0)
        text = "".join(c.choices[0].delta.content or "" for c in
                       ai.chat.completions.create(stream=True, **Q) if c.choices)
        results.append(text)

    threads = [threading.Thread(target=chat, args=(u,)) for u in ("ana", "bob", "root", "ana")]
    for t in threads:
        t.start()
    wait_until(lambda: gen.active == 1)
    during = []
    with served.client("bob") as bob:
        for _ in range(10):
            r = bob.post("/api/search", json={"query": "VPN password reset"})
            assert r.status_code == 200 and r.json()["hits"]
            during.append(gen.finished)
    for t in threads:
        t.join(30)
    assert results == [LONG] * 4
    assert gen.peak == 1  # the model never ran two answers at once
    assert during[-1] < 4  # every search was answered while answers were still generating


def test_full_queue_is_429_or_503_with_retry_after_and_the_client_honours_it(slow) -> None:
    served, _ = slow
    streams = []
    for user in ("ana", "ana", "bob", "bob", "root", "root"):
        c = served.client(user)
        streams.append((c, c.stream("POST", "/v1/chat/completions", json={**Q, "stream": True})))
    opened = [s.__enter__() for _, s in streams]
    assert all(r.status_code == 200 for r in opened)
    with served.client("ana") as ana:
        r = ana.post("/v1/chat/completions", json=Q)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "in progress" in r.json()["error"]["message"]
    served.tokens["dee"] = KeyStore(served.ws.root / "keys.json").create("dee")[1]
    with served.client("dee") as dee:
        r = dee.post("/v1/chat/completions", json=Q)
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    # the official client retries 429/503 after Retry-After and gets its answer
    retries = OpenAI(base_url=served.url + "/v1", api_key=served.tokens["dee"], max_retries=20)
    done = threading.Thread(target=lambda: results.append(
        retries.chat.completions.create(**Q).choices[0].message.content))
    results: list[str] = []
    done.start()
    for (c, s), r in zip(streams, opened):
        r.read()
        s.__exit__(None, None, None)
        c.close()
    done.join(60)
    assert results == [LONG]


def test_a_client_that_goes_away_stops_the_model(slow) -> None:
    served, gen = slow
    with served.client("ana") as ana:
        with ana.stream("POST", "/v1/chat/completions", json={**Q, "stream": True}) as r:
            lines = r.iter_lines()
            seen = [next(lines) for _ in range(6)]
        assert any("word" in line for line in seen)
        wait_until(lambda: gen.stopped == 1)  # closed mid-stream: generation stopped
        # non-streamed: the client gives up waiting
        with pytest.raises(httpx.ReadTimeout):
            ana.post("/v1/chat/completions", json=Q, timeout=0.3)
        wait_until(lambda: gen.stopped == 2)
        assert gen.finished == 0
        # the slot is free again
        assert ana.post("/v1/chat/completions", json=Q).json()["choices"][0]["message"]["content"] == LONG
    wait_until(lambda: httpx.get(served.url + "/api/ready").json()["queue"]["admitted"] == 0)


def test_a_client_that_leaves_the_queue_never_reaches_the_model(slow) -> None:
    served, gen = slow
    gen.delay = 0.1
    with served.client("ana") as ana, served.client("bob") as bob, \
            ana.stream("POST", "/v1/chat/completions", json={**Q, "stream": True}) as first:
        wait_until(lambda: gen.active == 1)
        with bob.stream("POST", "/v1/chat/completions", json={**Q, "stream": True}) as second:
            wait_until(lambda: httpx.get(served.url + "/api/ready").json()["queue"]["waiting"] == 1)
            assert second.status_code == 200
        wait_until(lambda: httpx.get(served.url + "/api/ready").json()["queue"]["waiting"] == 0)
        first.read()
    assert len(gen.calls) == 1 and gen.finished == 1
