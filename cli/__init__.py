"""The ``herald`` command: up, web, worker, migrate, token, apikey.

The composition root: the one place where the web side (``hub``) and the workers meet, and the only
user of ``devservices`` (the embedded PostgreSQL and Redis of `herald up`). Modules: ``main`` (the
parser and dispatch), ``serve`` (web, worker, up), ``admin`` (migrate, token, apikey), ``local_state``
(what a `herald up` in this folder left for the other commands) and ``common`` (shared helpers).
"""
