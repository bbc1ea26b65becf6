"""The `mailflow` command: run, status, check, simulate, report, digest, demo, auth login."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .clock import Clock, FixedClock, OffsetClock, SystemClock, parse_iso
from .config import Config, load_config
from .errors import MailflowError

if TYPE_CHECKING:
    from .render import Renderer
    from .rules import Ruleset

DEFAULT_CONFIG = "config.toml"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

config_option = click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The config file.",
)


def _config(path: str) -> Config:
    return load_config(Path(path))


def _fail(error: Exception) -> NoReturn:
    click.echo(f"mailflow: {error}", err=True)
    sys.exit(2)


def _config_and_now(config_path: str, now_text: str | None) -> tuple[Config, datetime]:
    """The config, and the time to act at (--now, or the system clock); errors end the command."""
    try:
        return _config(config_path), parse_iso(now_text) if now_text else SystemClock().now()
    except (MailflowError, ValueError) as error:
        _fail(error)


@click.group()
@click.version_option(package_name="mailflow")
def main() -> None:
    """Run a library's micro mentoring programme by email and calendar."""


@main.command()
@click.option("--once", is_flag=True, help="Handle what is waiting and due, then exit.")
@click.option("--now", "now_text", metavar="ISO-TIME", help="Run as if the clock said this time.")
@config_option
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def run(once: bool, now_text: str | None, config_path: str, quiet: bool) -> None:
    """The daemon: read mail, decide, send, fire timers.

    Waits for mail (IMAP IDLE or Maildir polling), handles it and fires due timers.
    Edits to rules/ and templates/ are used once they pass `mailflow check`; the
    coordinator is mailed when an edit is refused, and once a week a digest.
    """
    from .engine import Engine
    from .mailboxes import open_mail
    from .store import Store

    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        config = _config(config_path)
        clock: Clock = SystemClock()
        if now_text:
            start = parse_iso(now_text)
            clock = FixedClock(start) if once else OffsetClock(start)
        store = Store(config.state_path)
    except (MailflowError, ValueError) as error:
        _fail(error)
    try:
        source, sender = open_mail(config)
    except MailflowError as error:
        store.close()
        _fail(error)
    previous: dict[int, Any] = {}
    try:
        engine = Engine(config, store, source, sender, clock)
        # SIGTERM (systemd stop) and SIGINT (Ctrl-C): finish the message in hand, then leave.
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                previous[signum] = signal.signal(signum, lambda *_: engine.stop())
        if once:
            report = engine.run_once()
            click.echo(
                f"handled {report.handled} message(s) ({report.already_handled} already "
                f"handled before), fired {report.timers} timer(s), sent {report.sent}"
                + (f", {report.failed} delivery failure(s)" if report.failed else "")
            )
            if report.inbox_error:
                click.echo(f"mailflow: the inbox was not read: {report.inbox_error}", err=True)
                sys.exit(1)
        else:
            logging.getLogger("mailflow").info("%s", engine.health())
            engine.run_forever()
    except MailflowError as error:
        _fail(error)
    finally:
        engine.close()
        source.close()
        sender.close()
        store.close()
        for number, handler in previous.items():
            signal.signal(number, handler)


@main.group()
def auth() -> None:
    """OAuth2 sign-in for Microsoft 365 (mail.auth = "oauth2")."""


@auth.command("login")
@config_option
def auth_login(config_path: str) -> None:
    """Sign in once by device code; the tokens are kept in mail.oauth2.token_cache (mode 0600)."""
    from .auth import MsalTokens

    try:
        config = _config(config_path)
        tokens = MsalTokens.from_config(config)
        who = tokens.login_device(click.echo)
    except MailflowError as error:
        _fail(error)
    click.echo(f"Signed in as {who}; the token cache is {tokens.cache_path} (mode 0600).")


@main.command()
@click.argument("ref", required=False)
@config_option
@click.option(
    "--state",
    "state_filter",
    metavar="STATE[,STATE]",
    help="Only requests in these states (received, incomplete, asking, escalated, introduced, "
    "reflecting, closed, cancelled), or 'open' / 'finished'.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--now", "now_text", metavar="ISO-TIME", help="Show ages as if it were this time.")
def status(
    ref: str | None, config_path: str, state_filter: str | None, as_json: bool, now_text: str | None
) -> None:
    """Every request and its state, or one request's history.

    Without REF: a table of requests (reference, state, age, protégé, mentor, the next
    timer and when it fires), oldest first, finished ones included, then the recent
    decisions not tied to one request (skipped mail, refused edits). With REF: the
    request's form, the rule and candidates with their reasons, every mentor asked and
    how it ended, the sessions, and its history. The state is only read, so this works
    while `mailflow run` is running.
    """
    from . import status as show
    from .liveness import summary as liveness_summary
    from .model import Request
    from .store import Store

    config, now = _config_and_now(config_path, now_text)
    try:
        wanted = show.states_named(state_filter) if state_filter else None
        store = Store(config.state_path, readonly=True)
    except (MailflowError, ValueError) as error:
        _fail(error)
    if ref:
        request = store.find(ref.upper())
        if request is None:
            _fail(MailflowError(f"no request {ref.upper()} in {config.state_path}"))
        if as_json:
            from pydantic import TypeAdapter

            click.echo(TypeAdapter(Request).dump_json(request, indent=2).decode())
        else:
            click.echo(show.history(request))
        return
    requests = show.all_requests(store)
    if wanted is not None:
        requests = [r for r in requests if r.state.value in wanted]
    rows = [show.request_row(r, now, config.programme.time_zone) for r in requests]
    canary = liveness_summary(config, store, now)
    if as_json:
        click.echo(json.dumps({"requests": rows, "log": store.recent_log(50), "liveness": canary}, indent=2))
        return
    click.echo(show.table(rows) if rows or not state_filter else f"No request is {state_filter}.")
    click.echo(f"\n{canary}")
    entries = store.recent_log(10)
    if entries:
        click.echo("\nRecent decisions not tied to one request:")
        click.echo(show.log_lines(entries))


@main.command()
@config_option
def check(config_path: str) -> None:
    """Validate config, rules, the mentor directory and templates.

    Every problem is printed as FILE:LINE: what is wrong and how to fix it; the exit
    status is 1 when there is any. `mailflow run` refuses the same problems.
    """
    from .checks import check_all

    problems = check_all(Path(config_path))
    for problem in problems:
        click.echo(str(problem.relative_to(Path.cwd())))
    if problems:
        click.echo(f"{len(problems)} problem(s) found.", err=True)
        sys.exit(1)
    click.echo("config, rules, mentor directory and templates are fine.")


def _checked_files(config: Config) -> tuple[Ruleset, Renderer]:
    """The rules and templates as they are on disk; problems end the command (exit 1)."""
    from .checks import check_programme

    ruleset, renderer, issues = check_programme(config.rules_dir, config.templates_dir)
    if ruleset is None or renderer is None:
        for issue in issues:
            click.echo(str(issue.relative_to(Path.cwd())), err=True)
        click.echo(f"{len(issues)} problem(s): fix them first (mailflow check).", err=True)
        sys.exit(1)
    return ruleset, renderer


@main.command()
@click.argument("eml", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--replay",
    type=click.IntRange(min=1),
    metavar="N",
    help="Instead of one message: match the last N requests in the state again with the current "
    "rules, and list every request whose match would change.",
)
@click.option("--now", "now_text", metavar="ISO-TIME", help="Simulate as if the clock said this time.")
@config_option
def simulate(eml: str | None, replay: int | None, now_text: str | None, config_path: str) -> None:
    """What would happen to a request, and why; sends nothing.

    Reads the request in EML with the rule and template files as they are now and the
    state as it is (read-only). Shows the fields as read, every rule in order (which
    matched and why the others did not), the candidates in the order they would be asked
    with their reasons, the mentors filtered out and by which filter, the sessions each
    invite would propose, and the messages that would be sent. With --replay N, shows
    what the current rule files would change for the last N requests in the state, old
    against new.
    """
    from .simulate import explain, explain_replay
    from .simulate import replay as replay_requests
    from .simulate import simulate as simulate_request
    from .store import Store

    if (eml is None) == (replay is None):
        _fail(MailflowError("give either an .eml file or --replay N (see mailflow simulate --help)"))
    config, now = _config_and_now(config_path, now_text)
    ruleset, renderer = _checked_files(config)
    store = Store(config.state_path, readonly=True)
    try:
        if replay is not None:
            result = replay_requests(config, store, ruleset, replay)
            click.echo(explain_replay(result, config.rules_dir))
            return
        assert eml is not None
        sim = simulate_request(config, store, ruleset, renderer, Path(eml).read_bytes(), now)
        click.echo(explain(sim, eml, config))
    finally:
        store.close()


@main.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), metavar="DATE", help="First day (YYYY-MM-DD).")
@click.option(
    "--until", type=click.DateTime(["%Y-%m-%d"]), metavar="DATE", help="Last day, included (YYYY-MM-DD)."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["html", "csv"]),
    default="html",
    show_default=True,
    help="html: one self-contained page for a director; csv: one table for a spreadsheet.",
)
@click.option(
    "--table",
    type=click.Choice(["requests", "mentors", "reflections"]),
    default="requests",
    show_default=True,
    help="With --format csv: which table.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of the screen."
)
@click.option("--now", "now_text", metavar="ISO-TIME", help="Report as if the clock said this time.")
@config_option
def report(
    since: datetime | None,
    until: datetime | None,
    output_format: str,
    table: str,
    output: str | None,
    now_text: str | None,
    config_path: str,
) -> None:
    """What the programme did, for a director (HTML or CSV).

    Requests by state, topic area and format; how long people waited; each mentor's
    answers and hours against capacity; the reflections and their response rate.
    Requests are chosen by the day they arrived, in the programme's time zone (default:
    from the first request to today). The HTML report is one file with its charts inside;
    it needs no network to open, print or forward.
    """
    from .directory import DIRECTORY_FILE, load_directory
    from .report import build_report, write_csv
    from .report_html import render_html
    from .status import all_requests
    from .store import Store

    config, now = _config_and_now(config_path, now_text)
    try:
        store = Store(config.state_path, readonly=True)
    except MailflowError as error:
        _fail(error)
    try:
        mentors, _ = load_directory(config.rules_dir / DIRECTORY_FILE)
        data = build_report(
            all_requests(store),
            mentors,
            programme=config.programme.name,
            zone=config.programme.time_zone,
            default_format=config.programme.default_format,
            since=since.date() if since else None,
            until=until.date() if until else None,
            now=now,
        )
    finally:
        store.close()
    text = render_html(data) if output_format == "html" else write_csv(data, table)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({len(data.requests)} requests, {data.since} to {data.until})", err=True)
    else:
        click.echo(text, nl=False)


@main.command()
@click.option("--now", "now_text", metavar="ISO-TIME", help="Write it as if the clock said this time.")
@config_option
def digest(now_text: str | None, config_path: str) -> None:
    """Show the weekly digest as it would be written now.

    Nothing is sent.
    `mailflow run` mails it by itself once a week, at [digest] weekday and time in
    config.toml: escalations waiting, stuck requests, mentors at or near capacity, and
    the last seven days in numbers.
    """
    import secrets

    from . import digest as weekly
    from .messages import Messages
    from .status import all_requests
    from .store import Store
    from .tokens import Tokens

    config, now = _config_and_now(config_path, now_text)
    ruleset, renderer = _checked_files(config)
    store = Store(config.state_path, readonly=True)
    try:
        data = weekly.build_digest(
            all_requests(store), ruleset.mentors, store.mentor_load(now), config, now, now
        )
    finally:
        store.close()
    messages = Messages(
        config, renderer, Tokens(secrets.token_bytes(16), config.programme.address), "preview"
    )
    context = {
        **messages.base_context(None),
        "digest": weekly.digest_context(data, config.programme.time_zone),
    }
    rendered = renderer.render("digest", context)
    settings = config.digest
    when = (
        f"every {settings.weekday.capitalize()} at {settings.time} ({config.programme.time_zone})"
        if settings.enabled
        else "never: [digest] enabled = false"
    )
    click.echo(f"To: {config.programme.coordinator}  (mailflow run sends it {when})")
    click.echo(f"Subject: {rendered.subject}\n")
    click.echo(rendered.text, nl=False)


@main.command()
@click.option(
    "--dir",
    "folder",
    default="var/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo keeps its mailboxes.",
)
@click.option("--quiet", is_flag=True, help="Print only the summary.")
def demo(folder: str, quiet: bool) -> None:
    """A request-to-reflection walk-through on the embedded default.

    Ten example requests go through a Maildir inbox and outbox in --dir, with scripted
    mentors and protégés answering; it prints who received what and why.
    """
    from .demo import run_demo

    try:
        run_demo(Path(folder), echo=(lambda _: None) if quiet else click.echo, summary=click.echo)
    except MailflowError as error:
        _fail(error)
