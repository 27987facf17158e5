"""Alembic schema migrations for closetai.store (run by Store.init_schema; see env.py)."""
