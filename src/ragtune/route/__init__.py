"""Intent routing: a fine-tuned classifier decides what a question needs.

- :mod:`ragtune.route.data`: labelled-question JSONL (load, check, split, score);
- :mod:`ragtune.route.contrastive`: SetFit-style contrastive fine-tuning of the encoder;
- :mod:`ragtune.route.model`: :class:`IntentRouter` (train, save, load, predict on ONNX);
- :mod:`ragtune.route.policy`: :func:`decide` turns a label into a :class:`Route`
  (direct / out of scope / knowledge over some collections), with the access rules;
- ``ragtune route train|test|check`` lives in :mod:`ragtune.cli.route`.

Nothing heavy is imported here: torch and scikit-learn load only while training.
"""

from __future__ import annotations

from ragtune.route.data import IntentExample, load_intents
from ragtune.route.model import IntentRouter, RouterTrainConfig
from ragtune.route.policy import Route, decide, load_router

__all__ = ["IntentExample", "IntentRouter", "Route", "RouterTrainConfig", "decide",
           "load_intents", "load_router"]
