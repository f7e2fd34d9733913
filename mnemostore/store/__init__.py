"""Persistence: SQLAlchemy tables, repositories, transactions and tenant scope for SQLite and PostgreSQL."""
