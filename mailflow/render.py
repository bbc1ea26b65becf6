"""Rendering coordinators' templates (Jinja2, sandboxed, strict about undefined names).

Each message has one file, `templates/<name>.txt`, with two blocks:

    {% block subject %}Could you mentor {{ protege.name }}?{% endblock %}
    {% block body %} ... plain text ... {% endblock %}

The HTML part of every message is `templates/layout.html` wrapped around that text
(autoescaped), so coordinators edit one file per message and one layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import SandboxedEnvironment

from .errors import TemplateError

LAYOUT = "layout.html"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def local_time(when: datetime, zone: str, fmt: str = "%A %d %B %Y, %H:%M") -> str:
    """A UTC time shown in someone's zone, with the zone's abbreviation."""
    local = when.astimezone(ZoneInfo(zone))
    return f"{local.strftime(fmt)} {local.tzname()}"


def paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


class Renderer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(folder)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["local_time"] = local_time
        self.env.filters["paragraphs"] = paragraphs

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.txt") if not p.name.startswith("_"))

    def render(self, name: str, context: dict[str, Any], *, html: bool = True) -> Rendered:
        """Subject, text and (with `html`) the HTML part of one message."""
        filename = f"{name}.txt"
        try:
            template = self.env.get_template(filename)
            blocks = template.blocks
            if "subject" not in blocks or "body" not in blocks:
                raise TemplateError(
                    "needs a {% block subject %} and a {% block body %}",
                    path=str(self.folder / filename),
                    line=1,
                )
            ctx = template.new_context(dict(context))
            subject = " ".join("".join(blocks["subject"](ctx)).split())
            text = _tidy("".join(blocks["body"](ctx)))
            page = (
                self.env.get_template(LAYOUT).render(subject=subject, body=text, **_layout_context(context))
                if html
                else ""
            )
        except TemplateError:
            raise
        except JinjaError as error:
            where, line = _template_position(error)
            raise TemplateError(
                str(error.message or error), path=where or str(self.folder / filename), line=line
            ) from error
        return Rendered(subject=subject, text=text, html=page)


def _template_position(error: JinjaError) -> tuple[str | None, int | None]:
    """The file and line of a template error: syntax errors carry them; errors while
    rendering are found in the traceback, on the deepest frame that runs a template."""
    if getattr(error, "lineno", None):
        return getattr(error, "filename", None), error.lineno  # type: ignore[attr-defined]
    where: tuple[str | None, int | None] = (None, None)
    trace = error.__traceback__
    while trace is not None:
        template = trace.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            where = (template.filename, template.get_corresponding_lineno(trace.tb_lineno))
        trace = trace.tb_next
    return where


def _layout_context(context: dict[str, Any]) -> dict[str, Any]:
    return {"programme": context.get("programme", {})}


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip("\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
