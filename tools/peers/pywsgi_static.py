"""gevent.pywsgi serving a directory with the tiny static app (a peer for tools/bench).

    python tools/peers/pywsgi_static.py --root DIR --bind 127.0.0.1:PORT [--nodelay]

pywsgi writes the head and the body with two sends and leaves Nagle's algorithm on, so on a
keep-alive connection each response waits for the client's delayed ACK (about 40 ms on Linux).
`--nodelay` sets TCP_NODELAY on every accepted socket: the fair variant to compare speed with.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import socket  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from static_wsgi import make_app  # noqa: E402


class NoDelayWSGIServer(WSGIServer):
    """WSGIServer that disables Nagle's algorithm on each connection."""

    def handle(self, sock, address):  # noqa: D102
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle(sock, address)


def main() -> None:
    """Parse --root/--bind/--nodelay and serve forever with access logging off."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--bind", default="127.0.0.1:8000")
    parser.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on accepted sockets")
    args = parser.parse_args()
    host, _, port = args.bind.rpartition(":")
    cls = NoDelayWSGIServer if args.nodelay else WSGIServer
    server = cls((host, int(port)), make_app(args.root), log=None, backlog=2048)
    server.serve_forever()


if __name__ == "__main__":
    main()
