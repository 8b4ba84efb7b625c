"""The LRE server: identity, custody and notification services.

Layers: ``domain`` (the law, pure Python), ``storage`` (SQLAlchemy models,
repositories, Alembic migrations), ``api`` (thin gRPC servicers).
"""
