"""`mailflow check`: every problem in config, rules, directory and templates, at once."""

from __future__ import annotations

from pathlib import Path

from .config import check_config
from .render import Renderer
from .rules import check_rules
from .tomlsource import Issue


def check_all(config_path: Path) -> list[Issue]:
    if not config_path.exists():
        return [Issue(str(config_path), None, "no such file; copy config.example.toml to it")]
    config, issues = check_config(config_path)
    if config is None:
        return issues
    _, rule_issues = check_rules(config.rules_dir)
    issues.extend(rule_issues)
    issues.extend(check_templates(config.templates_dir))
    return issues


def check_templates(folder: Path) -> list[Issue]:
    if not folder.is_dir():
        return [Issue(str(folder), None, "the templates folder does not exist")]
    renderer = Renderer(folder)
    issues = []
    for name in renderer.names() + ["layout"]:
        filename = f"{name}.html" if name == "layout" else f"{name}.txt"
        try:
            renderer.env.get_template(filename)
        except Exception as error:
            line = getattr(error, "lineno", None)
            issues.append(Issue(str(folder / filename), line, f"does not compile: {error}"))
    return issues
