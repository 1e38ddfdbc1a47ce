"""A WSGI module whose import fails in every worker (the master only locates it): a worker that
cannot start, for the respawn backoff and transactional reload tests."""

raise RuntimeError("this application cannot start (test)")
