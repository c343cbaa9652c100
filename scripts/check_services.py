"""Stop `make test` early, with instructions, when PostgreSQL or Redis is not reachable."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlparse

import psycopg
import psycopg.sql
import redis

DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/attendance")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def database_ensure() -> None:
    """Create the database TEST_DATABASE_URL names when it is missing (for `make bench`, which
    works in a real database rather than pytest's throwaway one)."""
    parsed = urlparse(DATABASE_URL)
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, connect_timeout=3, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
            print(f"created database {name}")


def main() -> int:
    problems = []
    parsed = urlparse(DATABASE_URL)
    # Connect to the maintenance database: the test database is created by pytest-django.
    admin_url = parsed._replace(path="/postgres").geturl()
    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
    except psycopg.Error as exc:
        problems.append(
            f"PostgreSQL is not reachable at {parsed.hostname}:{parsed.port or 5432} "
            f"({type(exc).__name__}).\n"
            "  Start it, e.g.: pg_ctlcluster --skip-systemctl-redirect "
            "$(ls /etc/postgresql) main start\n"
            "  or point TEST_DATABASE_URL at a server (user needs CREATEDB)."
        )
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(
            f"Redis is not reachable at {urlparse(REDIS_URL).netloc} ({type(exc).__name__}).\n"
            "  Start it, e.g.: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 "
            '--save "" --appendonly no\n'
            "  or point TEST_REDIS_URL at a server."
        )
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and "--ensure-database" in sys.argv:
        database_ensure()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
