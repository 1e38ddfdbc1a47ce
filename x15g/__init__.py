"""x15g: a user-space web server on gevent in the spirit of X15 (2001)."""

__version__ = "0.1.0"
SERVER_SOFTWARE = f"x15g/{__version__}"
