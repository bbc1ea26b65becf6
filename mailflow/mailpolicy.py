"""The email policy every message is parsed and built with.

It is the standard library's modern `policy.default`, with two savings that change no
result, only how often the same work is done:

- the header registry remembers the header class it makes for each header name (the
  stock registry builds a fresh class with `type()` on every header access);
- header objects are immutable, so the same (name, value) is parsed once and the same
  header folded once: the programme address in From, the loop header, the MIME headers
  of a text part and the like are the same in every message mailflow writes.

Both caches are bounded. Values that hold CR or LF are refused exactly as before.
"""

from __future__ import annotations

from collections import OrderedDict
from email.headerregistry import HeaderRegistry
from email.policy import EmailPolicy
from typing import Any

MEMO_LIMIT = 256  # entries per cache: the repeated headers stay, one-off values fall out


class CachingHeaderRegistry(HeaderRegistry):
    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


class MemoPolicy(EmailPolicy):
    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if not isinstance(value, str) or hasattr(value, "name"):
            return super().header_store_parse(name, value)
        key = (name, value)
        header = _recall(_PARSED, key)
        if header is None:
            header = super().header_store_parse(name, value)[1]  # refuses CR/LF as before
            _remember(_PARSED, key, header)
        return name, header

    def fold_binary(self, name: str, value: Any) -> bytes:
        if not hasattr(value, "name"):  # a raw value from a parsed message: not cached
            return super().fold_binary(name, value)
        # Folding depends on the policy too (clones may differ in line ending or length).
        key = (
            name,
            str(value),
            type(value).__name__,
            self.linesep,
            self.max_line_length,
            self.utf8,
            self.cte_type,
        )
        folded = _recall(_FOLDED, key)
        if folded is None:
            folded = super().fold_binary(name, value)
            _remember(_FOLDED, key, folded)
        return folded


_PARSED: OrderedDict[tuple[str, str], Any] = OrderedDict()
_FOLDED: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()


def _recall(cache: OrderedDict[Any, Any], key: Any) -> Any:
    value = cache.get(key)
    if value is not None:
        cache.move_to_end(key)  # least recently used leaves first
    return value


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > MEMO_LIMIT:
        cache.popitem(last=False)


POLICY = MemoPolicy(header_factory=CachingHeaderRegistry())
