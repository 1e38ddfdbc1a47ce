"""Precompressed sidecars: `a.css.br` / `a.css.gz` beside `a.css`, chosen by Accept-Encoding.

`SIDECARS` names the files looked for (in preference order); `choose(accept_encoding, available)`
picks the coding to send, honouring q-values (RFC 9110 §12.5.3): the highest q wins, `q=0`
excludes, `*` covers codings not named, ties prefer br, then gzip, then identity. The answer for a
given header value is memoised, because clients send the same few values over and over.
"""

from __future__ import annotations

# (file suffix, content-coding) in preference order (h2o's file handler does the same).
SIDECARS: tuple[tuple[str, str], ...] = ((".br", "br"), (".gz", "gzip"))

IDENTITY = "identity"
_PREFERENCE = {"br": 3, "gzip": 2, IDENTITY: 1}
_ALIASES = {"x-gzip": "gzip"}  # RFC 9110 §8.4.1.3
_MEMO: dict[tuple[bytes, tuple[str, ...]], str] = {}
_MEMO_LIMIT = 512


def parse_accept_encoding(value: bytes) -> dict[str, float]:
    """coding -> q-value of an Accept-Encoding field; members with a malformed q are skipped."""
    weights: dict[str, float] = {}
    for member in value.split(b","):
        coding, *params = member.split(b";")
        name = coding.strip().lower().decode("latin-1")
        if not name:
            continue
        q = 1.0
        for param in params:
            key, _, text = param.strip().partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    q = float(text.strip())
                except ValueError:
                    q = -1.0
                if not 0.0 <= q <= 1.0:
                    q = -1.0
        if q >= 0.0:
            weights[_ALIASES.get(name, name)] = q
    return weights


def _quality(weights: dict[str, float], coding: str) -> float:
    if coding in weights:
        return weights[coding]
    if "*" in weights:
        return weights["*"]
    # identity is acceptable unless excluded by identity;q=0 or *;q=0 (RFC 9110 §12.5.3); when the
    # client did not name it, any coding it did name ranks above it (`gzip;q=0.5` means "gzip").
    return 0.001 if coding == IDENTITY else 0.0


def choose(accept_encoding: bytes | None, available: tuple[str, ...]) -> str:
    """The coding to send among `available` sidecar codings, or IDENTITY."""
    if not accept_encoding or not available:
        return IDENTITY
    key = (accept_encoding, available)
    found = _MEMO.get(key)
    if found is not None:
        return found
    weights = parse_accept_encoding(accept_encoding)
    best, best_rank = IDENTITY, (_quality(weights, IDENTITY), _PREFERENCE[IDENTITY])
    for coding in available:
        rank = (_quality(weights, coding), _PREFERENCE.get(coding, 0))
        if rank[0] > 0.0 and rank > best_rank:
            best, best_rank = coding, rank
    if len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.clear()
    _MEMO[key] = best
    return best
