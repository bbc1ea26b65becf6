"""Reading coordinators' TOML files with errors that name the file and line.

tomllib gives values without positions; `TomlSource` keeps the text so an error about
the third `[[rule]]` or the key `ask_timout` can point at the line where it is written.
Pydantic validation errors are turned into one readable line per problem, with a
"did you mean" for misspelt keys.
"""

from __future__ import annotations

import difflib
import os
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

    def relative_to(self, folder: Path) -> Issue:
        """The same issue with its path shown from `folder` when it lies inside it."""
        path = Path(self.path)
        if path.is_absolute() and path.is_relative_to(folder):
            message = self.message.replace(f"{folder}{os.sep}", "")  # rules named by file:line too
            return Issue(str(path.relative_to(folder)), self.line, message)
        return self


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
        """The line that sets `key` (dotted keys and sub-tables count).

        With `after` (the line of a `[[table]]` or `[table]` header), only that table is
        searched; without it, a dotted key is looked for under its own `[table]` header.
        When the key is not written (a missing key), the table's line is the answer.
        """
        lines = self.text.splitlines()
        parts = key.split(".")
        if after is None and len(parts) > 1 and self.table_line(parts[0]) is not None:
            return self.key_line(".".join(parts[1:]), after=self.table_line(parts[0]))
        start, end = (after or 1), len(lines)
        if after is not None and after <= len(lines):
            header = lines[after - 1].lstrip()
            closing = "[[" if header.startswith("[[") else "["
            end = (
                next(
                    (
                        n
                        for n in range(after + 1, len(lines) + 1)
                        if lines[n - 1].lstrip().startswith(closing)
                    ),
                    len(lines) + 1,
                )
                - 1
            )
        for suffix in (parts, parts[-1:]):
            dotted = r"\s*\.\s*".join(rf"\"?{re.escape(part)}\"?" for part in suffix)
            pattern = re.compile(rf"^\s*{dotted}\s*=")
            for number in range(start, end + 1):
                if pattern.match(lines[number - 1]):
                    return number
        return after

    def value_line(self, key_line: int | None, value: object) -> int | None:
        """The line of one value inside a list that spans lines (`availability = [ ... ]`)."""
        if key_line is None or not isinstance(value, str) or not value:
            return key_line
        lines = self.text.splitlines()
        quoted = (f'"{value}"', f"'{value}'")
        for number in range(key_line, min(len(lines), key_line + 40) + 1):
            text = lines[number - 1]
            if number > key_line and re.match(r"^\s*[\w\".-]+\s*=", text):
                break  # the next key: the value is not written on its own line
            if any(q in text for q in quoted):
                return number
        return key_line

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
            problems = error.errors()
            misspelt = {_suggested_key(p, model) for p in problems if p["type"] == "extra_forbidden"}
            for problem in problems:
                location = [str(part) for part in problem["loc"]]
                key = ".".join(p for p in location if not p.isdigit())
                if problem["type"] == "missing" and key in misspelt:
                    continue  # said once, as "unknown key 'x'; did you mean 'y'?"
                line = self.key_line(key, after=start) if key else start
                if location and location[-1].isdigit():
                    line = self.value_line(line, problem.get("input"))
                issues.append(Issue(str(self.path), line, _explain(problem, model, label, key)))
            return None, issues


# How to fix each kind of pydantic error, said for someone editing a TOML file.
_FIXES = {
    "int_type": "write a whole number without quotes, like 3",
    "int_parsing": "write a whole number without quotes, like 3",
    "int_from_float": "write a whole number, like 3",
    "float_type": "write a number without quotes, like 4 or 2.5",
    "float_parsing": "write a number without quotes, like 4 or 2.5",
    "bool_type": "write true or false, without quotes",
    "bool_parsing": "write true or false, without quotes",
    "string_type": 'write it in double quotes, like "text"',
    "list_type": 'write a list in square brackets, like ["first", "second"]',
    "dict_type": "write it as a table: [name] on its own line, then key = value lines",
    "model_type": "write it as a table: [name] on its own line, then key = value lines",
    "model_attributes_type": "write it as a table: [name] on its own line, then key = value lines",
    "too_short": "give at least one entry",
    "string_too_short": "it must not be empty",
}


def _explain(problem: Any, model: type[BaseModel], label: str, key: str) -> str:
    prefix = f"{label}: " if label else ""
    kind = problem["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, key)
        guess = difflib.get_close_matches(key.split(".")[-1], known, n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else f"; known keys: {', '.join(sorted(known))}"
        return f"{prefix}unknown key '{key}'{hint}"
    if kind == "missing":
        return f"{prefix}'{key}' is required; add a line '{key.split('.')[-1]} = ...'"
    message = problem["msg"].removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and "@" in str(problem.get("ctx", {}).get("pattern", "")):
        message = f"{problem.get('input')!r} is not an email address; write it like 'name@library.org'"
    elif kind in _FIXES:
        message = f"{message}; {_FIXES[kind]}"
    return f"{prefix}'{key}': {message}" if key else f"{prefix}{message}"


def _suggested_key(problem: Any, model: type[BaseModel]) -> str | None:
    """The full key an unknown key was probably meant to be (`programme.coordinator`)."""
    key = ".".join(str(p) for p in problem["loc"] if not str(p).isdigit())
    guess = difflib.get_close_matches(key.split(".")[-1], _known_keys(model, key), n=1)
    return ".".join([*key.split(".")[:-1], guess[0]]) if guess else None


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
