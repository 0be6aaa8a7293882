"""The metadata store: SQLAlchemy models (`models`), engines, sessions and migrations (`db`), and
data-access functions that return domain dataclasses (`repository`)."""
