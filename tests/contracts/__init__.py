"""Contract suites, one per pluggable role. A backend's tests subclass the role's contract
class and provide its fixture (``store``, ``embedder``, ``generator``, ``retriever``); the
same tests then run against every backend, fakes included (Haystack's
``testing/document_store.py`` mixins are the model)."""
