"""ragtune: ground a language model in your documents, fine-tune it, and measure which serves you best.

>>> import ragtune
>>> ragtune.__version__
'0.1.0'
"""

__version__ = "0.1.0"
