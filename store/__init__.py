"""The one home of SQL: every query and write, per aggregate. Nothing outside store/ and db/ imports SQLAlchemy."""
