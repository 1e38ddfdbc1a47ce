"""CGI/1.1 (RFC 3875): one process per request. Below `app/` and `specweb/`, which both mount it."""
