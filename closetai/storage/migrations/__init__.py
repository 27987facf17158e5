"""Alembic schema migrations for closetai.storage.store (run by Store.init_schema; see env.py)."""
