"""Alembic migrations of the metadata store (one history; see `fnplat.store.db.upgrade_to_head`)."""
