"""Monitoring: know when answers go bad, from the records every answer leaves in the store.

- :mod:`ragtune.monitor.records`: one time window's answer records as numpy columns;
- :mod:`ragtune.monitor.freshness`: documents changed or gone on disk, too old, idle
  collections, stale adapters and the live questions they answered;
- :mod:`ragtune.monitor.quality`: groundedness, citation support, refusal, not-found,
  unsupported-claim and thumbs-down rates per collection, mode and day, with a test of the
  change against the previous window;
- :mod:`ragtune.monitor.gaps`: failed questions clustered by meaning, exported as eval stubs;
- :mod:`ragtune.monitor.drift`: question, corpus-distance and route-share drift;
- :mod:`ragtune.monitor.data_health`: near-duplicates, label conflicts, train/eval overlap
  and source balance of a fine-tuning dataset;
- :mod:`ragtune.monitor.alerts`: ``[monitor.alerts]`` thresholds and the webhook;
- :mod:`ragtune.monitor.health`: the report that puts them together;
- :mod:`ragtune.monitor.report`: that report as a self-contained HTML page and text lines;
- :mod:`ragtune.monitor.prometheus`: ``/metrics`` for ``ragtune serve``.
"""

from ragtune.monitor.health import monitor_report

__all__ = ["monitor_report"]
