"""Database access: engine construction, the ORM models, migrations."""
