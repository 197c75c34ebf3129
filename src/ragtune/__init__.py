"""ragtune: ground a language model in your documents, fine-tune it, and measure which serves you best.

>>> import ragtune
>>> ragtune.__version__
'0.1.0'
"""

from ragtune import offline as _offline

# Before anything below (or a user's code after ``import ragtune``) loads a model library:
# their telemetry must be off before they initialise (see ragtune/offline.py).
_offline.apply()

__version__ = "0.1.0"
