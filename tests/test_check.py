"""`mailflow check`: one case per kind of problem, each naming the file, the line and the fix.

Every case starts from a valid programme (the test rules and mailflow's own templates,
copied), makes one edit a coordinator could make, and expects exactly one problem at
the line where the edit is.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailflow.checks import check_all
from mailflow.cli import main

from .programme import DATA, REPO

CONFIG = """[programme]
name = "Library Micro Mentoring"
address = "mentoring@library.org"
coordinator = "coordinator@library.org"
time_zone = "America/Chicago"

[mail]
inbox = "maildir:mailbox"
outbox = "maildir:outbox"
poll_seconds = 5

[scheduling]
min_notice = "2d"

[digest]
weekday = "monday"
time = "08:00"
"""

TEEN_RULE = """[[rule]]
name = "Teen services"
when.keywords = ["teen", "youth", "advisory"]
when.formats = ["video", "in person", "shadowing"]
candidates.skills = ["teen services", "youth development"]
rank = ["prior_relationship", "skill_overlap", "least_loaded"]
ask_timeout = "2d"
"""


@dataclass
class Case:
    id: str
    file: str  # relative to the programme folder
    old: str  # replaced by `new`; empty: `new` is appended
    new: str
    marker: str  # the expected line is the first line containing this (in the edited file)
    message: str  # {rule:NAME} stands for the file:line of that rule's [[rule]] header
    offset: int = 0  # added to the marker's line (-1: the table header above a `name =` line)
    last: bool = False  # the marker's last line, not its first


CASES = [
    # -- config.toml -------------------------------------------------------------------------
    Case(
        "config unknown key",
        "config.toml",
        'coordinator = "coordinator@library.org"',
        'coordinater = "coordinator@library.org"',
        "coordinater",
        "config: unknown key 'programme.coordinater'; did you mean 'coordinator'?",
    ),
    Case(
        "config wrong type",
        "config.toml",
        "poll_seconds = 5",
        'poll_seconds = "often"',
        "poll_seconds",
        "config: 'mail.poll_seconds': Input should be a valid number, unable to parse string as a "
        "number; write a number without quotes, like 4 or 2.5",
    ),
    Case(
        "config bad duration",
        "config.toml",
        'min_notice = "2d"',
        'min_notice = "two-ish days"',
        "min_notice",
        "config: 'scheduling.min_notice': cannot read 'two-ish days' as a length of time; "
        "write it like '3d', '6h', '90m' or '45 minutes'",
    ),
    Case(
        "config duration without unit",
        "config.toml",
        'min_notice = "2d"',
        "min_notice = 2",
        "min_notice",
        "config: 'scheduling.min_notice': write 2 with a unit, like '2d' or '2h'",
    ),
    Case(
        "config unknown time zone",
        "config.toml",
        'time_zone = "America/Chicago"',
        'time_zone = "America/Chicgo"',
        "time_zone",
        "config: 'programme.time_zone': unknown time zone 'America/Chicgo'; use an IANA name like "
        "'America/Chicago'",
    ),
    Case(
        "config not an email address",
        "config.toml",
        'coordinator = "coordinator@library.org"',
        'coordinator = "the coordinator"',
        "coordinator",
        "config: 'programme.coordinator': 'the coordinator' is not an email address; write it like "
        "'name@library.org'",
    ),
    Case(
        "config digest day",
        "config.toml",
        'weekday = "monday"',
        'weekday = "mondays and fridays"',
        "weekday",
        "config: 'digest.weekday': 'mondays and fridays' is not a day of the week; write it like 'monday'",
    ),
    Case(
        "config digest time",
        "config.toml",
        'time = "08:00"',
        'time = "8am"',
        'time = "8am"',
        "config: 'digest.time': '8am' is not a time of day; write it like '08:00' (24-hour clock)",
    ),
    Case(
        "config not TOML",
        "config.toml",
        'name = "Library Micro Mentoring"',
        'name = "Library Micro Mentoring',
        "name =",
        "not valid TOML",
    ),
    # -- the mentor directory ---------------------------------------------------------------
    Case(
        "mentor unknown key",
        "rules/mentors.toml",
        'time_zone = "America/Chicago"\navailability = ["Mon-Wed 13:00-16:00"]',
        'timezone = "America/Chicago"\navailability = ["Mon-Wed 13:00-16:00"]',
        "timezone",
        "mentor #2 (marcus.okafor@example.org): unknown key 'timezone'; did you mean 'time_zone'?",
    ),
    Case(
        "mentor wrong type",
        "rules/mentors.toml",
        "max_active = 1\n",
        'max_active = "one"\n',
        'max_active = "one"',
        "mentor #3 (tomas.reyes@example.org): 'max_active': Input should be a valid integer, unable "
        "to parse string as an integer; write a whole number without quotes, like 3",
    ),
    Case(
        "mentor unknown time zone",
        "rules/mentors.toml",
        'time_zone = "America/New_York"\navailability = ["Tue',
        'time_zone = "US/Boston"\navailability = ["Tue',
        "US/Boston",
        "mentor #5 (samuel.bright@example.org): 'time_zone': unknown time zone 'US/Boston'; use an "
        "IANA name like 'America/Chicago'",
    ),
    Case(
        "mentor availability does not parse",
        "rules/mentors.toml",
        'availability = ["Mon 09:00-12:00", "Wed 09:00-12:00", "Fri 13:00-15:00"]',
        'availability = [\n  "Mon 09:00-12:00",\n  "whenever the moon is full",\n]',
        "whenever the moon",
        "mentor #4 (aiko.tanaka@example.org): 'availability': cannot read the availability 'whenever "
        "the moon is full'; write it like 'weekday afternoons', 'Tue/Thu 2-5pm' or 'Mon 09:00-12:00'",
    ),
    Case(
        "mentor away period",
        "rules/mentors.toml",
        'away = ["2026-11-25..2026-12-31"]',
        'away = ["Christmas week"]',
        "Christmas week",
        "mentor #6 (grace.kim@example.org): 'away': away period 'Christmas week' must look like "
        "'2026-12-20..2027-01-04'",
    ),
    Case(
        "duplicate mentor address",
        "rules/mentors.toml",
        "",
        '\n[[mentor]]\nemail = "Violeta.Garza@example.org"\nname = "Violeta again"\n'
        'time_zone = "America/Los_Angeles"\navailability = ["Tue 15:00-17:00"]\n',
        'name = "Violeta again"',
        "mentor #8 (Violeta.Garza@example.org): violeta.garza@example.org is already listed at line 3; "
        "each mentor appears once",
        offset=-2,  # the duplicate's [[mentor]] header
    ),
    # -- the rules ---------------------------------------------------------------------------
    Case(
        "rule unknown key",
        "rules/rules.toml",
        'ask_timeout = "2d"',
        'ask_timout = "2d"',
        "ask_timout",
        "rule 'Teen services': unknown key 'ask_timout'; did you mean 'ask_timeout'?",
    ),
    Case(
        "rule bad duration",
        "rules/rules.toml",
        'ask_timeout = "2d"',
        'ask_timeout = "soon"',
        'ask_timeout = "soon"',
        "rule 'Teen services': 'ask_timeout': cannot read 'soon' as a length of time; write it like "
        "'3d', '6h', '90m' or '45 minutes'",
    ),
    Case(
        "rule wrong type",
        "rules/rules.toml",
        'when.keywords = ["grant", "funding"]',
        'when.keywords = "grant"',
        'when.keywords = "grant"',
        "rule 'Grants': 'when.keywords': Input should be a valid list; write a list in square "
        'brackets, like ["first", "second"]',
    ),
    Case(
        "rule unknown format",
        "rules/rules.toml",
        'when.formats = ["shadowing"]',
        'when.formats = ["zoom"]',
        'when.formats = ["zoom"]',
        "rule 'Shadowing a leader': 'when.formats': 'zoom' is not one of: video, in person, phone, shadowing",
    ),
    Case(
        "rule unknown rank key",
        "rules/rules.toml",
        'rank = ["prior_relationship", "skill_overlap", "least_loaded"]',
        'rank = ["prior_relationship", "skills", "least_loaded"]',
        '"skills"',
        "rule 'Teen services': unknown rank key 'skills'; use any of language, least_loaded, "
        "preferred_mentor, prior_relationship, same_library, skill_overlap",
    ),
    Case(
        "defaults twice",
        "rules/zz-extra.toml",
        "",
        '[defaults]\nask_timeout = "1d"\n',
        "[defaults]",
        "[defaults] is already set in",
    ),
    Case(
        "rule without when hides the rules after it",
        "rules/rules.toml",
        TEEN_RULE,
        '[[rule]]\nname = "Anything"\ncandidates.skills = ["*"]\n\n' + TEEN_RULE,
        'name = "Anything"',
        "rule 'Anything' has no `when`, so it matches every request and the 4 rule(s) after it are "
        "never used: 'Teen services' ({rule:Teen services}), 'Shadowing a leader' ({rule:Shadowing a "
        "leader}), 'Grants' ({rule:Grants}), 'Everything else' ({rule:Everything else}); move "
        "'Anything' to the end",
        offset=-1,
    ),
    Case(
        "rule hidden by a broader earlier rule",
        "rules/rules.toml",
        "",
        '\n[[rule]]\nname = "Youth grants"\nwhen.keywords = ["youth grant"]\n'
        'candidates.skills = ["grant writing"]\n',
        'name = "Youth grants"',
        "rule 'Youth grants' is never used: rule 'Grants' ({rule:Grants}) comes first and matches "
        "every request 'Youth grants' would; move 'Youth grants' above it, or narrow the `when` of "
        "'Grants'",
        offset=-1,
    ),
    Case(
        "rule whose pool is empty",
        "rules/rules.toml",
        'candidates.skills = ["grant writing"]',
        'candidates.libraries = ["Seattle Public Library"]\n'
        'candidates.mentors = ["violeta.garza@example.org"]',
        'name = "Grants"',
        "rule 'Grants' has nobody to ask: no mentor in the directory is in its candidates, so every "
        "request it matches goes straight to the coordinator; widen `candidates` or add a mentor who fits",
        offset=-1,
    ),
    Case(
        "rule format nobody in the pool offers",
        "rules/rules.toml",
        'when.keywords = ["grant", "funding"]',
        'when.keywords = ["grant", "funding"]\nwhen.formats = ["video", "in person"]',
        'when.formats = ["video", "in person"]',
        "rule 'Grants' takes 'in person' requests, but no mentor in its pool offers 'in person' "
        "(Aiko Tanaka); remove it from when.formats or add it to a mentor's formats",
    ),
    Case(
        "rule skill no mentor has",
        "rules/rules.toml",
        'candidates.skills = ["grant writing"]',
        'candidates.skills = ["grant writing", "fundrasing"]',
        '"fundrasing"',
        "rule 'Grants': no mentor has the skill 'fundrasing'; did you mean 'fundraising'?",
    ),
    Case(
        "rule mentor not in the directory",
        "rules/rules.toml",
        'candidates.skills = ["grant writing"]',
        'candidates.skills = ["grant writing"]\ncandidates.mentors = ["aiko.tanaka@example.org", '
        '"aiko.tanaka@example.com"]',
        "candidates.mentors",
        "rule 'Grants': aiko.tanaka@example.com is not in the mentor directory; did you mean "
        "aiko.tanaka@example.org?",
    ),
    Case(
        "rule that can never match",
        "rules/rules.toml",
        'when.keywords = ["grant", "funding"]',
        'when.keywords = ["grant", "funding"]\nwhen.languages = ["fr"]',
        "when.languages",
        "rule 'Grants': requests are only read as 'en' (English) or 'es' (Spanish), so 'fr' never "
        "matches; use 'en' or 'es'",
    ),
    Case(
        "rule prior relationship no request says",
        "rules/rules.toml",
        'when.keywords = ["grant", "funding"]',
        'when.keywords = ["grant", "funding"]\nwhen.prior_relationship = ["yes"]',
        "when.prior_relationship",
        "rule 'Grants': no request ever says prior relationship 'yes'; use any of 'not needed', "
        "'preferred', 'required'",
    ),
    # -- templates ---------------------------------------------------------------------------
    Case(
        "template syntax error",
        "templates/acknowledgement.txt",
        "{% block body %}",
        "{% block body %}\n{% if request.goal %}\nGoal: {{ request.goal }}\n",
        "{% endblock %}",  # where the {% if %} should have been closed
        "Encountered unknown tag 'endblock'. You probably made a nesting mistake. Jinja is expecting "
        "this tag, but currently looking for 'elif' or 'else' or 'endif'. The innermost block that "
        "needs to be closed is 'if'.; check that every {% ... %} is closed",
        last=True,
    ),
    Case(
        "template undefined name",
        "templates/ask.txt",
        "{% block body %}",
        "{% block body %}\nDear {{ mentor_name }},",
        "mentor_name",
        "'mentor_name' is not a name mailflow gives templates; did you mean 'mentor'? "
        "(the names are listed under Templates in the README)",
    ),
    Case(
        "template unknown field, in a branch the sample does not take",
        "templates/ask.txt",
        "{% block body %}",
        "{% block body %}\n{% if not ref %}{{ protege.phone }}{% endif %}",
        "protege.phone",
        "'protege.phone' does not exist: protege has email, library, name",
    ),
    Case(
        "template unknown filter",
        "templates/withdrawn.txt",
        "{% block body %}",
        "{% block body %}\n{{ ref | shout }}",
        "shout",
        "No filter named 'shout'.",
    ),
    Case(
        "template without a subject block",
        "templates/cancelled.txt",
        "{% block subject %}",
        "{% block title %}",
        "{% block title %}",
        "needs a {% block subject %} and a {% block body %}",
    ),
    Case(
        "template error inside a shared macro",
        "templates/_macros.txt",
        "Time budget:        {{ request.budget }}",
        "Time budget:        {{ request.budget_minutes }}",
        "request.budget_minutes",
        "'dict object' has no attribute 'budget_minutes'",
    ),
]


def programme_files(root: Path) -> Path:
    shutil.copytree(DATA / "rules", root / "rules")
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "config.toml").write_text(CONFIG)
    return root / "config.toml"


def line_of(path: Path, marker: str, *, last: bool = False) -> int:
    found = [n for n, line in enumerate(path.read_text().splitlines(), start=1) if marker in line]
    assert found, f"{marker!r} not in {path}"
    return found[-1] if last else found[0]


def rule_places(message: str, rules: Path) -> str:
    """{rule:NAME} -> the file:line of that rule's [[rule]] header."""
    return re.sub(
        r"\{rule:([^}]+)\}",
        lambda m: f"{rules.resolve()}:{line_of(rules, f'name = {chr(34)}{m[1]}{chr(34)}') - 1}",
        message,
    )


def test_the_unchanged_programme_has_no_problems(tmp_path: Path) -> None:
    assert check_all(programme_files(tmp_path)) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_problem_names_file_line_and_fix(tmp_path: Path, case: Case) -> None:
    config = programme_files(tmp_path)
    path = tmp_path / case.file
    text = path.read_text() if path.exists() else ""
    if case.old:
        assert text.count(case.old) >= 1, case.old
        text = text.replace(case.old, case.new, 1)
    else:
        text = text + case.new
    path.write_text(text)
    expected_line = line_of(path, case.marker, last=case.last) + case.offset
    issues = check_all(config)
    assert len(issues) == 1, "\n".join(map(str, issues))
    (issue,) = issues
    assert Path(issue.path).resolve() == path.resolve(), issue
    assert rule_places(case.message, tmp_path / "rules" / "rules.toml") in issue.message, str(issue)
    assert issue.line == expected_line, str(issue)


def test_check_exits_non_zero_and_prints_file_and_line(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = programme_files(tmp_path)
    rules = tmp_path / "rules" / "rules.toml"
    rules.write_text(rules.read_text().replace('ask_timeout = "2d"', 'ask_timeout = "2 dayz"'))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 1
    line = line_of(rules, "2 dayz")
    assert f"rules/rules.toml:{line}: rule 'Teen services': 'ask_timeout': cannot read" in result.output
    assert "1 problem(s) found." in result.output
    fine = CliRunner().invoke(main, ["check", "--config", str(programme_files(tmp_path / "ok"))])
    assert fine.exit_code == 0 and "are fine" in fine.output


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config = programme_files(tmp_path)
    for file, old, new in (
        ("config.toml", 'time_zone = "America/Chicago"', 'time_zone = "Chicago"'),
        ("rules/rules.toml", 'ask_timeout = "2d"', 'ask_timout = "2d"'),
        ("templates/ask.txt", "{% block body %}", "{% block body %}{{ nope }}"),
    ):
        path = tmp_path / file
        path.write_text(path.read_text().replace(old, new))
    # A broken config stops there: the rest depends on its paths.
    assert [Path(i.path).name for i in check_all(config)] == ["config.toml"]
    (tmp_path / "config.toml").write_text(CONFIG)
    assert sorted(Path(i.path).name for i in check_all(config)) == ["ask.txt", "rules.toml"]
    # A broken [defaults] or mentor does not hide the order of the rules.
    rules, mentors = tmp_path / "rules" / "rules.toml", tmp_path / "rules" / "mentors.toml"
    rules.write_text(
        rules.read_text().replace("max_candidates = 3", 'max_candidates = "3 or 4"')
        + '\n[[rule]]\nname = "Grant funding"\nwhen.keywords = ["grant funding"]\n'
    )
    mentors.write_text(mentors.read_text().replace('time_zone = "America/Chicago"', 'time_zone = "Texas"'))
    messages = [i.message for i in check_all(config)]
    assert any(
        m.startswith("[defaults]: 'max_candidates': Input should be a valid integer") for m in messages
    )
    assert any("unknown time zone 'Texas'" in m for m in messages)
    assert any(m.startswith("rule 'Grant funding' is never used: rule 'Grants'") for m in messages)
