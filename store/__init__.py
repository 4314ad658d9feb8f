"""PostgreSQL and Redis: the asyncpg pool, migrations, one module per table group, Redis key names.

Functions here take a connection (or pool) and run SQL; rules live in the layers above.
"""
