"""The email policy every message is parsed and built with.

It is the standard library's modern `policy.default`, with one change: the header
registry remembers the header class it makes for each header name. The stock
registry builds a fresh class with `type()` on every header access, which made
header handling the largest single cost of processing a message.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import HeaderRegistry
from typing import Any


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


POLICY = policy.default.clone(header_factory=CachingHeaderRegistry())
