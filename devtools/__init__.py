"""Developer tooling: the embedded Postgres and the `manage.py` commands (run, test, migrate, psql).

Nothing here is imported by the services; it exists so a fresh clone with only Python 3 can run
and test the whole system without Docker or a system Postgres.
"""
