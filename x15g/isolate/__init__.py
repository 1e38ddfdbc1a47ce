"""Isolated handlers: untrusted application code in sandboxed processes (issue 14).

With `--isolate` the WSGI app and the SPECweb99-like dynamic module run in a pool of handler
processes per worker instead of inside it. The worker parses the head and routes as always; a
dynamic request's client socket then goes to a handler with SCM_RIGHTS (`protocol`), the handler
answers on it directly (files by sendfile) and reports back (status, bytes, keep-alive) so the
worker logs it and carries on with the connection (`pool`). The handler process (`handler`) is
started fresh and locks itself in (`sandbox`: uid/gid, fds, no_new_privs, `landlock`, `seccomp`,
rlimits) before it imports any application code.
"""
