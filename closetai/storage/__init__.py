"""The database: schema, queries, media files, migrations (Store)."""
