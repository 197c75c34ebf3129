"""Intent routing: a fine-tuned classifier decides what a question needs.

- :mod:`ragtune.route.data`: labelled-question JSONL (load, check, split, score);
- :mod:`ragtune.route.contrastive`: SetFit-style contrastive fine-tuning of the encoder;
- :mod:`ragtune.route.model`: :class:`IntentRouter` (train, save, load, predict on ONNX);
- :mod:`ragtune.route.policy`: :func:`decide` turns a label into a :class:`RouteDecision`
  (direct / out of scope / knowledge over some collections), with the access rules;
- :mod:`ragtune.route.cli`: ``ragtune route train|test|check``.

Nothing heavy is imported here: torch and scikit-learn load only while training.
"""

from __future__ import annotations

from ragtune.route.data import IntentExample, load_intents
from ragtune.route.model import IntentRouter, TrainConfig
from ragtune.route.policy import RouteDecision, decide, load_router

__all__ = ["IntentExample", "IntentRouter", "RouteDecision", "TrainConfig", "decide",
           "load_intents", "load_router"]
