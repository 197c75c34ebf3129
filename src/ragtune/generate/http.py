"""HttpGenerator: any OpenAI-compatible chat server (llama.cpp server, vLLM, Ollama, OpenAI).

Talks to ``POST {base_url}/chat/completions`` with httpx, whole or streamed (server-sent
events: ``data: {...}`` lines ending with ``data: [DONE]``).

>>> g = HttpGenerator("http://127.0.0.1:8000/v1", "qwen")  # doctest: +SKIP
>>> g.complete([{"role": "user", "content": "Hi"}]).text    # doctest: +SKIP
'Hello! How can I help?'

Token counts come from the server's ``usage``; when a server sends none, the prompt is
estimated at 4 characters per token and the completion as one token per streamed piece.

A LoRA adapter served by the server is addressed by model name (vLLM's ``--lora-modules
NAME=PATH``, llama.cpp server's ``model_alias``): ``HttpGenerator(url, "support-style",
adapter="support-style")``. Before its first request such a generator asks ``GET /models``
whether the server knows the name: llama-cpp-python's server answers an unknown model with
its default model instead of an error, which would pass the base model off as the adapter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from ragtune.config import GenerationSettings
from ragtune.errors import ModelError
from ragtune.generate.base import Completion

_HINTS = {
    401: "check generation.api_key",
    403: "check generation.api_key",
    404: "check generation.base_url (does it need to end in /v1?) and generation.model",
}


def _error_text(response: httpx.Response) -> str:
    """The server's own error message, from an OpenAI-style or FastAPI-style body."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return str(body)[:300]


def _estimate_tokens(messages: list[dict[str, str]]) -> int:
    return max(1, sum(len(m.get("content", "")) for m in messages) // 4)


class HttpGenerator:
    """A Generator backed by an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 120,
                 max_tokens: int = 200, temperature: float = 0.0, *,
                 adapter: str | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ModelError(f"generation.base_url must start with http:// or https://, got {base_url!r}")
        if max_tokens < 1:
            raise ModelError(f"max_tokens must be >= 1, got {max_tokens}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.name = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout)
        self.last_completion: Completion | None = None
        self.adapter = adapter  # the ragtune adapter this model name serves (None: the base)
        self._model_checked = adapter is None

    @classmethod
    def from_settings(cls, settings: GenerationSettings, *,
                      adapter: str | None = None) -> HttpGenerator:
        """The ``[generation]`` server's base model, or ``adapter`` on it: the model name
        ``generation.adapter_models`` maps the adapter to, else the adapter's own name."""
        model = settings.model if adapter is None else settings.adapter_models.get(adapter, adapter)
        return cls(settings.base_url, model, api_key=settings.api_key, timeout=settings.timeout_s,
                   max_tokens=settings.max_tokens, temperature=settings.temperature,
                   adapter=adapter)

    def served_models(self) -> list[str] | None:
        """The model names ``GET {base_url}/models`` lists; None when the server has no such
        list (not every OpenAI-compatible server does)."""
        try:
            response = self._client.get(f"{self.base_url}/models")
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        try:
            data = response.json()["data"] if response.status_code == 200 else None
            return [str(m["id"]) for m in data] if isinstance(data, list) else None
        except (ValueError, KeyError, TypeError):
            return None

    def _not_served(self, problem: str) -> ModelError:
        mapped = f" as model '{self.model}'" if self.model != self.adapter else ""
        return ModelError(
            f"adapter '{self.adapter}'{mapped} is not served by {self.base_url}: {problem}. Load it "
            f"on the server under that name (vLLM: --enable-lora --lora-modules "
            f"{self.model}=ADAPTER_FOLDER; llama.cpp server: a model with model_alias "
            f"'{self.model}' and lora_path) or map the adapter to the server's name in "
            "generation.adapter_models (docs/finetuning.md)")

    def _check_model(self) -> None:
        """An adapter's model name must be one the server lists (checked once)."""
        if self._model_checked:
            return
        served = self.served_models()
        if served is not None and self.model not in served:
            raise self._not_served(f"it serves {', '.join(served) or 'no models'}")
        self._model_checked = True

    def close(self) -> None:
        self._client.close()

    def _payload(self, messages: list[dict[str, str]], max_tokens: int | None,
                 temperature: float | None, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "temperature": self.temperature if temperature is None else temperature,
            "stream": stream,
        }
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _fail(self, problem: str) -> ModelError:
        return ModelError(f"{self.url}: {problem}")

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        if not response.is_closed:
            response.read()
        text = _error_text(response)
        # vLLM: 404 "The model `NAME` does not exist."; some servers say it with a 400.
        if self.adapter is not None and (response.status_code == 404 or (
                response.status_code == 400 and self.model in text)):
            raise self._not_served(f"HTTP {response.status_code}: {text}")
        hint = _HINTS.get(response.status_code, "")
        raise self._fail(f"HTTP {response.status_code}: {text}"
                         + (f" ({hint})" if hint else ""))

    def _transport_error(self, e: httpx.HTTPError) -> ModelError:
        if isinstance(e, httpx.ConnectError):
            return self._fail(f"cannot connect ({e}); is the server running?")
        if isinstance(e, httpx.TimeoutException):
            return self._fail(f"no answer within {self.timeout} s (generation.timeout_s)")
        return self._fail(f"request failed: {e!r}")

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None) -> Completion:
        self._check_model()
        start = time.perf_counter()
        try:
            response = self._client.post(
                self.url, json=self._payload(messages, max_tokens, temperature, False))
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        self._check_status(response)
        try:
            body = response.json()
            text = body["choices"][0]["message"]["content"]
            finish = body["choices"][0].get("finish_reason")
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise self._fail(f"malformed response ({e!r}): {response.text[:300]!r}") from None
        total = time.perf_counter() - start
        usage = body.get("usage") or {}
        self.last_completion = Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or _estimate_tokens(messages)),
            completion_tokens=int(usage.get("completion_tokens") or max(1, len(text) // 4)),
            # Nothing arrives before the whole reply, so the first token is at the end.
            timings={"first_token_s": total, "total_s": total},
            finish_reason=finish if isinstance(finish, str) else None,
        )
        return self.last_completion

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        """Yield content deltas as they arrive; ``last_completion`` is set at the end."""
        self._check_model()
        start = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        usage: dict[str, Any] = {}
        finish: str | None = None
        payload = self._payload(messages, max_tokens, temperature, True)
        try:
            with self._client.stream("POST", self.url, json=payload) as response:
                self._check_status(response)
                seen = False
                other: list[str] = []  # non-event lines, quoted if the stream holds no event
                for line in response.iter_lines():
                    event = self._parse_event(line)
                    if event is None:
                        if line.strip() and len(other) < 3:
                            other.append(line.strip())
                        continue
                    seen = True
                    if isinstance(event, str):  # "[DONE]"
                        break
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        if isinstance(choice.get("finish_reason"), str):
                            finish = choice["finish_reason"]
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if first is None:
                                first = time.perf_counter() - start
                            pieces.append(piece)
                            yield piece
                if not seen:
                    raise self._fail(f"malformed stream: no 'data:' events, got {' '.join(other)[:300]!r}")
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        total = time.perf_counter() - start
        text = "".join(pieces)
        self.last_completion = Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or _estimate_tokens(messages)),
            completion_tokens=int(usage.get("completion_tokens") or len(pieces)),
            timings={"first_token_s": total if first is None else first, "total_s": total},
            finish_reason=finish,
        )

    def _parse_event(self, line: str) -> dict[str, Any] | str | None:
        """One SSE line: a JSON event, "[DONE]", or None for blanks, comments and other fields."""
        line = line.strip()
        if not line.startswith("data:"):
            return None  # blank keep-alive, ": comment", "event: ..." lines
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return data
        try:
            event = json.loads(data)
        except ValueError:
            raise self._fail(f"malformed stream event: {data[:300]!r}") from None
        if not isinstance(event, dict):
            raise self._fail(f"malformed stream event: {data[:300]!r}")
        if "error" in event:
            err = event["error"]
            raise self._fail(f"error in stream: {err.get('message', err) if isinstance(err, dict) else err}")
        return event
