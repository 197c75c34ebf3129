"""``ragtune serve``: the team's document Q&A service over one workspace.

OpenAI-compatible chat under ``/v1`` (:mod:`ragtune.server.openai_api`), ragtune's own API
under ``/api`` (:mod:`ragtune.server.api`), the web app at ``/`` (``ui/``), identity in
:mod:`ragtune.server.auth`, the generation queue in :mod:`ragtune.server.gate`. Build it
with :func:`ragtune.server.app.create_app`. Needs ``pip install 'ragtune[server]'``.
"""
