"""Development and test tooling: a private PostgreSQL and Redis for `herald up` and the tests.

Used when no servers are configured (``DATABASE_URL``/``REDIS_URL`` unset). Nothing in the runtime
packages imports this one: the ``herald`` command (``cli``) and the test harness do. All of it is kept
under one data directory (``./.herald/`` by default)::

    postgres/        PostgreSQL data directory (initdb on first start); server.log; usually the socket
    redis/           appendonly.aof, redis.pid, redis.log
    services.json    the urls and the owner's pid, for other CLI commands in the same folder
    up.lock          taken while starting, so two starts in one folder do not race

Modules, by concern: ``postgres`` (initdb, pg_ctl), ``redis`` (redis-server), ``runas`` (who runs
PostgreSQL when we are root, and what that user must be able to read), ``pgcopy`` (as root, the copy
of the PostgreSQL installation that user can read, in ``/var/tmp/herald-postgres/``), ``processes``
(pids, signals, logs), ``registry`` (``services.json``) and ``services`` (starting and stopping both).
"""

from devservices.errors import EmbeddedError
from devservices.registry import ServiceUrls, running_services
from devservices.services import EmbeddedServices, start_embedded

__all__ = ["EmbeddedError", "EmbeddedServices", "ServiceUrls", "running_services", "start_embedded"]
