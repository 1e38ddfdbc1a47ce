"""What a cache miss does (blocking: runs in the threadpool through FileCache.fill/DiskIO).

`Loader.load(segments, trailing)` turns checked URL segments into a cache entry: a `FileEntry`
(with its precompressed sidecars as variants), or an `Answer` for a redirect, a listing, a 403 or
a 404 (negative entries are cached like files). Every filesystem path it touches, sidecars
included, goes through `PathMap.resolve`, so a variant name cannot lead out of the root.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import stat as stat_module
from typing import Any, Mapping

from x15g.errors import HTTPError
from x15g.static.filecache import Answer, Entry, FileEntry, open_entry, stat_stamp
from x15g.static.mimetypes import MimeMap
from x15g.static.pathmap import PathMap
from x15g.static.precompressed import SIDECARS

log = logging.getLogger("x15g.static")

# errnos that mean "no such file to serve" (404); any other failure to stat/open/read a file that
# exists is the server's fault (EIO, EINVAL, ...): 500 (RFC 9110 §15.6.1), cached only for the
# revalidation window like other answers, so a failing disk is not hammered on every request.
_NOT_FOUND = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.ENXIO})


def _os_error_answer(real: str, exc: OSError) -> Answer:
    if exc.errno in _NOT_FOUND:
        return Answer("error", 404, exc.strerror or "not found")
    log.error("cannot read %s: %s", real, exc)
    return Answer("error", 500, "cannot read the file")


def parse_cache_control(rules: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`GLOB=VALUE` settings -> (glob, value) pairs, in order (the first match wins)."""
    pairs = []
    for rule in rules:
        pattern, _, value = rule.partition("=")
        pairs.append((pattern.strip(), value.strip()))
    return tuple(pairs)


class Loader:
    """Builds cache entries for URL segments; see the module doc."""

    def __init__(self, settings: Any, paths: PathMap, type_overrides: Mapping[str, str] | None = None) -> None:
        self.paths = paths
        self.mime = MimeMap(settings, type_overrides)
        self.index = settings.index
        self.autoindex = bool(settings.autoindex)
        self.precompressed = bool(settings.precompressed)
        self.cache_control = parse_cache_control(settings.cache_control)
        self.keep_body = min(settings.small_file_size, settings.cache_memory)

    def cache_control_for(self, url_path: str) -> str | None:
        """The Cache-Control value of the first rule whose glob matches `url_path`."""
        for pattern, value in self.cache_control:
            if fnmatch.fnmatchcase(url_path, pattern):
                return value
        return None

    def load(self, segments: tuple[str, ...], trailing: bool) -> Entry:
        """Blocking: the entry for the URL made of `segments` (see the module doc)."""
        try:
            real = self.paths.resolve(segments)
            st = os.stat(real)
        except HTTPError as exc:
            return Answer("error", exc.status, exc.reason)
        except (FileNotFoundError, NotADirectoryError):
            return Answer("error", 404, "not found")
        except PermissionError:
            return Answer("error", 403, "permission denied")
        except OSError as exc:
            return _os_error_answer("/" + "/".join(segments), exc)
        if stat_module.S_ISDIR(st.st_mode):
            return self._directory(segments, trailing, real)
        if trailing or not stat_module.S_ISREG(st.st_mode):
            return Answer("error", 404, "not a directory" if trailing else "not a regular file")
        return self._file_or_answer(segments, real)

    def _directory(self, segments: tuple[str, ...], trailing: bool, real: str) -> Entry:
        url_path = self.paths.url_of(segments, True)
        if not trailing:
            return Answer("redirect", 301, location=url_path)  # RFC 9110 §15.4.2
        index_segments = segments + (self.index,)
        try:
            index_real = self.paths.resolve(index_segments)
            entry = self._file(index_segments, index_real)
        except (HTTPError, FileNotFoundError, NotADirectoryError, PermissionError):
            entry = None
        if entry is not None:
            return entry
        if self.autoindex:
            return Answer("listing", 200, path=real, url_path=url_path)
        return Answer("error", 403, "directory listing denied")

    def _file_or_answer(self, segments: tuple[str, ...], real: str) -> Entry:
        try:
            entry = self._file(segments, real)
        except PermissionError:
            return Answer("error", 403, "permission denied")
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise  # not an answer to cache: FileCache.fill frees descriptors and retries
            return _os_error_answer(real, exc)
        return entry if entry is not None else Answer("error", 404, "not a regular file")

    def _file(self, segments: tuple[str, ...], real: str) -> FileEntry | None:
        """Open `real` and, when enabled, its sidecars; None if it is not a regular file."""
        url_path = "/" + "/".join(segments)
        content_type = self.mime.content_type(url_path, segments[-1])
        cache_control = self.cache_control_for(url_path)
        common: tuple[tuple[str, str], ...] = (("Cache-Control", cache_control),) if cache_control else ()
        variants, watch = self._sidecars(segments, content_type, common) if self.precompressed else ((), ())
        if variants:
            common += (("Vary", "Accept-Encoding"),)  # on every variant, identity too (RFC 9110 §12.5.5)
        entry = open_entry(real, content_type, self.keep_body, common)
        if entry is None:
            for _, variant in variants:
                variant.retire()
            return None
        for _, variant in variants:
            variant.follow(entry)
        entry.variants = variants
        entry.codings = tuple(coding for coding, _ in variants)
        entry.watch = entry.watch + watch
        return entry

    def _sidecars(self, segments: tuple[str, ...], content_type: str, common: tuple[tuple[str, str], ...]
                  ) -> tuple[tuple[tuple[str, FileEntry], ...], tuple[tuple[str, Any], ...]]:
        """Existing `NAME.br`/`NAME.gz` as variants, and the (path, stamp) pairs to watch."""
        variants: list[tuple[str, FileEntry]] = []
        watch: list[tuple[str, Any]] = []
        for suffix, coding in SIDECARS:
            side_segments = segments[:-1] + (segments[-1] + suffix,)
            try:
                side_real = self.paths.resolve(side_segments)
            except HTTPError:
                continue  # e.g. a symlinked sidecar when links are not followed
            stamp = stat_stamp(side_real)
            watch.append((side_real, stamp))
            if stamp is None:
                continue
            extra = (("Content-Encoding", coding),) + common + (("Vary", "Accept-Encoding"),)
            try:
                variant = open_entry(side_real, content_type, self.keep_body, extra, "-" + suffix[1:])
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    for _, opened in variants:
                        opened.retire()
                    raise
                continue
            if variant is not None:
                variants.append((coding, variant))
        return tuple(variants), tuple(watch)
