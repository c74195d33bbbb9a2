"""The persistent call log: SQLite / Postgres, migrations, readers (issue 16)."""
