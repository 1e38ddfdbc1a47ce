"""bjoern serving a WSGI app of tools/peers (a peer for tools/bench's app scenarios).

    python tools/peers/bjoern_app.py --bind 127.0.0.1:PORT --app hello_wsgi:app
"""

import argparse
import importlib

import bjoern


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--app", required=True, help="MODULE:NAME")
    args = parser.parse_args()
    module, _, name = args.app.partition(":")
    app = getattr(importlib.import_module(module), name)
    host, _, port = args.bind.rpartition(":")
    bjoern.run(app, host, int(port))


if __name__ == "__main__":
    main()
