"""Reading coordinators' TOML files with errors that name the file and line.

tomllib gives values without positions; `TomlSource` keeps the text so an error about
the third `[[rule]]` or the key `ask_timout` can point at the line where it is written.
Pydantic validation errors are turned into one readable line per problem, with a
"did you mean" for misspelt keys.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class Issue:
    """One problem in a coordinator's file."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass
class TomlSource:
    path: Path
    text: str
    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> tuple[TomlSource | None, list[Issue]]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            return None, [Issue(str(path), None, f"cannot read the file: {error}")]
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            line = getattr(error, "lineno", None) or _line_from_message(str(error))
            return None, [
                Issue(
                    str(path),
                    line,
                    f"not valid TOML: {error}. Check quotes, brackets and that every value is on one line",
                )
            ]
        return cls(path, text, data), []

    def table_line(self, header: str, index: int = 0) -> int | None:
        """The line of the index-th `[[header]]` (or `[header]`) in the file."""
        pattern = re.compile(rf"^\s*\[\[?\s*{re.escape(header)}\s*\]\]?\s*(#.*)?$")
        seen = -1
        for number, line in enumerate(self.text.splitlines(), start=1):
            if pattern.match(line):
                seen += 1
                if seen == index:
                    return number
        return None

    def key_line(self, key: str, after: int | None = None) -> int | None:
        """The first line at or after `after` that sets `key` (dotted keys and tables count)."""
        last = key.split(".")[-1]
        pattern = re.compile(rf"^\s*(?:[\w.\"-]+\.)?\"?{re.escape(last)}\"?\s*=")
        lines = self.text.splitlines()
        for number in range(after or 1, len(lines) + 1):
            if pattern.match(lines[number - 1]):
                return number
        return after

    def validate(
        self,
        model: type[BaseModel],
        data: Any,
        *,
        header: str | None = None,
        index: int = 0,
        label: str = "",
    ) -> tuple[Any, list[Issue]]:
        """Validate `data` against `model`; problems come back as `Issue`s with lines."""
        try:
            return model.model_validate(data), []
        except ValidationError as error:
            start = self.table_line(header, index) if header else None
            issues = []
            for problem in error.errors():
                location = [str(part) for part in problem["loc"]]
                key = ".".join(p for p in location if not p.isdigit())
                line = self.key_line(key, after=start) if key else start
                issues.append(Issue(str(self.path), line, _explain(problem, model, label, key)))
            return None, issues


def _explain(problem: Any, model: type[BaseModel], label: str, key: str) -> str:
    prefix = f"{label}: " if label else ""
    if problem["type"] == "extra_forbidden":
        known = _known_keys(model, key)
        guess = difflib.get_close_matches(key.split(".")[-1], known, n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else f"; known keys: {', '.join(sorted(known))}"
        return f"{prefix}unknown key '{key}'{hint}"
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "missing":
        return f"{prefix}'{key}' is required"
    return f"{prefix}'{key}': {message}" if key else f"{prefix}{message}"


def _known_keys(model: type[BaseModel], key: str) -> list[str]:
    parts = key.split(".")[:-1]
    current: Any = model
    for part in parts:
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        annotation = getattr(field, "annotation", None)
        if annotation is None or not hasattr(annotation, "model_fields"):
            break
        current = annotation
    fields = getattr(current, "model_fields", {})
    return [info.alias or name for name, info in fields.items()]


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None
