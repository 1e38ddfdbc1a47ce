#!/usr/bin/env python3
"""Fuzz the HTTP parser and body decoders (issue 6): only x15g's HTTPError may ever escape.

Each input is split by its first byte into a head part and a body part; the head goes through
`parse_head` (with small limits so limit paths are exercised too), and when it parses, the rest
is fed to the matching body decoder (chunked or Content-Length) in pieces whose sizes come from
the input. Anything raised other than `x15g.errors.HTTPError` is a crash: it is reported with the
input (and the input written to --crash-dir).

Engines: atheris (coverage-guided libFuzzer, seeded with the three corpora) when installed, else a
mutational loop over the corpora (byte flips, inserts, deletes, splices, interesting tokens).

Usage: .venv/bin/python -m tools.fuzz [--runs 1000000] [--engine atheris|mutate] [--crash-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:  # coverage instrumentation of the parser modules only (instrument_all costs ~30 s)
    import atheris

    with atheris.instrument_imports(include=["x15g"]):
        from x15g.errors import HTTPError
        from x15g.http.body import ChunkedBody, ContentLengthBody
        from x15g.http.parser import Limits, known_head, parse_head, request_of
except ImportError:
    atheris = None
    from x15g.errors import HTTPError
    from x15g.http.body import ChunkedBody, ContentLengthBody
    from x15g.http.parser import Limits, known_head, parse_head, request_of

LIMITS = Limits(max_request_line=512, max_header_size=4096, max_header_count=20, max_field_size=512,
                max_body_size=4096)
TOKENS = [b"\r\n", b"\r\n\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b",", b"\x00", b"\x7f", b"\xff",
          b"Content-Length: ", b"Transfer-Encoding: chunked\r\n", b"Host: x\r\n", b"0\r\n\r\n",
          b"ffffffffffffffff", b"HTTP/1.1", b"HTTP/1.0", b"GET ", b"POST ", b"%2e%2e", b"Expect: 100-continue\r\n",
          b"Connection: keep-alive, close\r\n", b"=\"\\\"\"", b"-1", b"+5", b"0x"]


def verdict(raw: bytes) -> object:
    """parse_head's answer to `raw`: (request, consumed), None, or the HTTPError's status and text."""
    try:
        return parse_head(raw, LIMITS)
    except HTTPError as error:
        return error.status, str(error)


def one_input(data: bytes) -> None:
    """The fuzz target: raise only HTTPError, and keep the parser's promises (among them: the
    same bytes parse the same way when they come again, from the parse caches)."""
    if not data:
        return
    step = data[0] % 17 + 1
    raw = data[1:]
    first = verdict(raw)
    for _ in range(3):  # a field block is kept on its first sighting, a whole head after it
        assert verdict(raw) == first, "a parse from the caches differs from the first"
    known = known_head(raw, LIMITS)  # what the ready answers read, without a Request
    if known is not None:
        assert isinstance(first, tuple) and first[1] == len(raw) and request_of(known) == first[0], \
            "known_head disagrees with parse_head"
    try:
        parsed = parse_head(raw, LIMITS)
        if parsed is None:
            return
        request, consumed = parsed
        assert 0 < consumed <= len(raw) and raw[consumed - 4:consumed] == b"\r\n\r\n", "bad consumed"
        rest = raw[consumed:]
        if request.chunked:
            body = ChunkedBody(LIMITS)
        elif request.content_length:
            body = ContentLengthBody(request.content_length)
        else:
            return
        pos = 0
        while pos < len(rest) and not body.done:
            used = body.feed(rest[pos:pos + step])
            assert 0 <= used <= step, "feed consumed more than given"
            pos += used
            if used < min(step, len(rest) - pos + used) and not body.done:
                raise AssertionError("decoder stopped consuming before done")
        body.take()
    except HTTPError:
        pass


def seeds() -> list[bytes]:
    """Every corpus payload (gunicorn, llhttp, http-garden), each with a random step byte."""
    from tests.support.corpus import corpus_available, load_all

    found = [b"\x05" + case.raw + case.second for case in load_all()] if corpus_available() else []
    return found or [b"\x05GET / HTTP/1.1\r\nHost: x\r\n\r\n"]


class Crashes:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.seen: dict[str, int] = {}

    def record(self, data: bytes, exc: BaseException) -> None:
        key = f"{type(exc).__name__}: {traceback.extract_tb(exc.__traceback__)[-1][:3]}"
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] == 1:
            path = os.path.join(self.directory, f"crash-{len(self.seen)}.bin")
            with open(path, "wb") as f:
                f.write(data)
            print(f"CRASH {key} ({exc}); input in {path}: {data[:200]!r}", flush=True)


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[at:at] = rng.choice(TOKENS)
        elif op == 2:
            del buf[at:at + rng.randint(1, 8)]
        elif op == 3:
            other = rng.choice(pool)
            start = rng.randint(0, len(other))
            buf[at:] = other[start:start + rng.randint(0, 64)] + buf[at:]
        elif op == 4 and buf:
            buf[at:at] = bytes(buf[at:at + rng.randint(1, 16)]) * rng.randint(2, 50)
        else:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(buf[:8192])


def run_mutational(runs: int, crashes: Crashes, seed: int) -> int:
    rng = random.Random(seed)
    pool = seeds()
    done = 0
    while done < runs:
        data = mutate(rng, rng.choice(pool), pool)
        try:
            one_input(data)
        except Exception as exc:  # noqa: BLE001 - anything but HTTPError is the finding
            crashes.record(data, exc)
        done += 1
        if done % 100_000 == 0:
            print(f"{done} inputs, {sum(crashes.seen.values())} crashes", flush=True)
    return done


def run_atheris(runs: int, crashes: Crashes) -> int:
    corpus_dir = tempfile.mkdtemp(prefix="x15g-fuzz-corpus-")
    for i, data in enumerate(seeds()):
        with open(os.path.join(corpus_dir, f"seed-{i}"), "wb") as f:
            f.write(data)
    counter = {"n": 0}
    start = time.monotonic()

    def target(data: bytes) -> None:
        counter["n"] += 1
        try:
            one_input(data)
        except Exception as exc:  # noqa: BLE001
            crashes.record(data, exc)
        if counter["n"] % 100_000 == 0:
            print(f"{counter['n']} inputs, {sum(crashes.seen.values())} crashes", flush=True)
        if counter["n"] == runs:  # libFuzzer exits from C right after: report now
            _report("atheris", counter["n"], start, crashes)

    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=8192", f"-artifact_prefix={crashes.directory}/",
                   "-print_final_stats=1", corpus_dir], target)
    try:
        atheris.Fuzz()
    except SystemExit:
        pass
    return counter["n"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    parser.add_argument("--crash-dir", default=tempfile.gettempdir())
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if atheris is not None else "mutate"
    crashes = Crashes(args.crash_dir)
    start = time.monotonic()
    if engine == "atheris":
        n = run_atheris(args.runs, crashes)
    else:
        n = run_mutational(args.runs, crashes, args.seed)
    _report(engine, n, start, crashes)
    return 1 if crashes.seen else 0


def _report(engine: str, n: int, start: float, crashes: Crashes) -> None:
    print(json.dumps({"engine": engine, "inputs": n, "seconds": round(time.monotonic() - start, 1),
                      "crashes": sum(crashes.seen.values()), "distinct": list(crashes.seen)}), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
