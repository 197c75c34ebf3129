"""No network: the telemetry switches of every library ragtune may load, set before they load.

``import ragtune`` runs :func:`apply` first thing, so these are in the environment before any
of our modules imports onnxruntime, transformers, huggingface_hub, sentence-transformers,
llama.cpp or a store client. Telemetry is forced off (an inherited ``=0`` is overridden: the
README promises that nothing leaves the machine); the hub's offline switches are only
defaults, so a user who wants ``ragtune`` to download a model names that with
``HF_HUB_OFFLINE=0``.

Why each one:

- ``ORT_DISABLE_TELEMETRY`` / ``ORT_TELEMETRY_DISABLED``: ONNX Runtime (>= 1.29 on Linux)
  starts a 1DS uploader when its environment is created, which resolves a telemetry host
  about 10 s later and keeps an event queue under ``~/.cache/Microsoft``; only a variable set
  before that stops it (``disable_telemetry_events()`` comes too late). Both spellings have
  been read by released versions.
- ``HF_HUB_DISABLE_TELEMETRY``, ``DO_NOT_TRACK``: huggingface_hub (and through it
  transformers, sentence-transformers, peft, accelerate) sends usage pings otherwise.
- ``ANONYMIZED_TELEMETRY``: Chroma's client reports usage to PostHog unless it is False.
- ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ``HF_DATASETS_OFFLINE``: no hub lookups
  (model files come from packages or local folders).
- ``WANDB_MODE``: a transformers ``Trainer`` reports to Weights & Biases when it is installed.

llama.cpp, pypdf, python-docx, BeautifulSoup, numpy, torch and scikit-learn send nothing.

>>> import os, ragtune
>>> os.environ["ORT_DISABLE_TELEMETRY"], os.environ["HF_HUB_DISABLE_TELEMETRY"]
('1', '1')
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

TELEMETRY_OFF: dict[str, str] = {
    "ORT_DISABLE_TELEMETRY": "1",
    "ORT_TELEMETRY_DISABLED": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "WANDB_MODE": "disabled",
}
OFFLINE_DEFAULTS: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


def apply(environ: MutableMapping[str, str] | None = None) -> None:
    """Force telemetry off and default the hub to offline in ``environ`` (``os.environ``).

    >>> env = {"ORT_DISABLE_TELEMETRY": "0", "HF_HUB_OFFLINE": "0"}
    >>> apply(env)
    >>> env["ORT_DISABLE_TELEMETRY"], env["HF_HUB_OFFLINE"], env["TRANSFORMERS_OFFLINE"]
    ('1', '0', '1')
    """
    env = os.environ if environ is None else environ
    env.update(TELEMETRY_OFF)
    for name, value in OFFLINE_DEFAULTS.items():
        env.setdefault(name, value)
