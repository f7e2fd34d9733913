"""Scheduled backups: the retention rule (properties and calendars), pruning on disk, ``backup --into … --verify``.

The rule is pure and takes the times, so hypothesis tries many calendars; the runs are given their time
(``scheduled_backup(now=…)``), so a week of nightly backups takes no waiting. The CLI runs with the real clock into
a folder already holding older archives: pruning reads only names, so those can be empty files.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from mnemostore import BackupError, BackupVerificationFailed, MnemoStore, Settings
from mnemostore.cli._schedule import scheduled_backup
from mnemostore.cli.main import app
from mnemostore.ops import BackupManifest, Scope
from mnemostore.ops._archive import TableEntry
from mnemostore.ops.retention import (
    RetentionPlan,
    archive_name,
    archives_to_keep,
    list_archives,
    parse_archive_name,
    plan_retention,
    prune,
)
from mnemostore.ops.verify import count_mismatches, verify_archive
from tests.backup_data import Databases, dump


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the rule, by properties -----------------------------------------------------------------------------------------

# Times over three years (the same week number comes back every year), mixed with times crowded into the three
# weeks around a new year (several a day, weeks across the year's end).
times = st.lists(
    st.one_of(
        st.datetimes(min_value=datetime(2022, 12, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)),
        st.datetimes(min_value=datetime(2024, 12, 20), max_value=datetime(2025, 1, 10), timezones=st.just(UTC)),
    ),
    max_size=40,
)
keeps = st.integers(min_value=0, max_value=12)


def _reference(taken: list[datetime], daily: int, weekly: int) -> set[datetime]:
    """The rule written the other way round: group by period, order the periods, take each one's maximum."""
    kept = {max(taken)} if taken else set()
    for period_of, count in ((lambda t: t.date(), daily), (lambda t: t.isocalendar()[:2], weekly)):
        groups: dict[object, list[datetime]] = {}
        for moment in taken:
            groups.setdefault(period_of(moment), []).append(moment)
        newest_periods = sorted(groups, key=lambda p: max(groups[p]), reverse=True)[:count]
        kept |= {max(groups[p]) for p in newest_periods}
    return kept


@settings(max_examples=300, deadline=None)
@given(times, keeps, keeps)
def test_the_rule_keeps_the_newest_per_period_and_at_most_n_plus_m(taken: list[datetime], daily: int, weekly: int):
    kept = archives_to_keep(taken, keep_daily=daily, keep_weekly=weekly)
    assert kept <= set(taken)
    assert len(kept) <= max(1, daily + weekly)
    if taken:
        assert max(taken) in kept  # never the newest, whatever N and M
    for moment in kept:  # nothing but the newest of its day is ever kept
        assert moment == max(t for t in taken if t.date() == moment.date())
    days = sorted({t.date() for t in taken}, reverse=True)
    assert {t.date() for t in kept} >= set(days[:daily])  # each of the last N days that have archives
    weeks = sorted({t.isocalendar()[:2] for t in taken}, reverse=True)
    assert {t.isocalendar()[:2] for t in kept} >= set(weeks[:weekly])
    assert kept == _reference(taken, daily, weekly)


@settings(max_examples=200, deadline=None)
@given(times, keeps, keeps)
def test_pruning_twice_deletes_nothing_more_and_more_keeps_keep_more(taken: list[datetime], daily: int, weekly: int):
    kept = archives_to_keep(taken, keep_daily=daily, keep_weekly=weekly)
    assert archives_to_keep(kept, keep_daily=daily, keep_weekly=weekly) == kept  # a second run is a no-op
    assert kept <= archives_to_keep(taken, keep_daily=daily + 1, keep_weekly=weekly)
    assert kept <= archives_to_keep(taken, keep_daily=daily, keep_weekly=weekly + 1)


@given(st.lists(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])), max_size=10))
def test_the_rule_reads_days_and_weeks_in_utc(taken: list[datetime]):
    in_utc = archives_to_keep([t.astimezone(UTC) for t in taken], keep_daily=2, keep_weekly=1)
    assert archives_to_keep(taken, keep_daily=2, keep_weekly=1) == in_utc


def test_the_rule_refuses_naive_times_and_negative_counts():
    with pytest.raises(ValueError, match="time zone"):
        archives_to_keep([datetime(2024, 1, 1)], keep_daily=1, keep_weekly=0)
    with pytest.raises(ValueError, match="negative"):
        archives_to_keep([], keep_daily=-1, keep_weekly=0)
    assert archives_to_keep([], keep_daily=3, keep_weekly=3) == set()


# -- the rule, on calendars built by hand ----------------------------------------------------------------------------


def test_several_backups_a_day_keep_the_last_of_each_day():
    taken = [at(f"2024-03-{day:02d}T{hour:02d}:00:00") for day in (4, 5, 6) for hour in (1, 9, 17)]
    kept = archives_to_keep(taken, keep_daily=2, keep_weekly=0)
    assert kept == {at("2024-03-06T17:00:00"), at("2024-03-05T17:00:00")}
    # Midnight UTC starts a day: 23:59:59 and 00:00:00 are two days.
    edge = [at("2024-03-05T23:59:59"), at("2024-03-06T00:00:00")]
    assert archives_to_keep(edge, keep_daily=2, keep_weekly=0) == set(edge)
    assert archives_to_keep(edge, keep_daily=1, keep_weekly=0) == {at("2024-03-06T00:00:00")}


def test_days_without_backups_do_not_count():
    # A server down for a week: "the last 3 days" are the last 3 days that HAVE archives.
    taken = [at("2024-03-01T02:00:00"), at("2024-03-02T02:00:00"), at("2024-03-03T02:00:00"), at("2024-03-11T02:00:00")]
    kept = archives_to_keep(taken, keep_daily=3, keep_weekly=0)
    assert kept == {at("2024-03-11T02:00:00"), at("2024-03-03T02:00:00"), at("2024-03-02T02:00:00")}


def test_iso_weeks_run_monday_to_sunday_across_the_new_year():
    # 2024-12-29 is a Sunday (2024-W52); 2024-12-30, a Monday, is already in 2025-W01, and so is 2025-01-05.
    assert date(2024, 12, 30).isocalendar()[:2] == (2025, 1)
    taken = [
        at("2024-12-21T03:00:00"),  # Saturday, W51
        at("2024-12-23T03:00:00"),  # Monday, W52
        at("2024-12-29T03:00:00"),  # Sunday, W52: the newest of W52
        at("2024-12-30T03:00:00"),  # Monday, 2025-W01
        at("2025-01-02T03:00:00"),  # Thursday, 2025-W01
        at("2025-01-05T03:00:00"),  # Sunday, 2025-W01: the newest of all
    ]
    assert archives_to_keep(taken, keep_daily=0, keep_weekly=2) == {
        at("2025-01-05T03:00:00"),
        at("2024-12-29T03:00:00"),
    }
    assert archives_to_keep(taken, keep_daily=0, keep_weekly=3) == {
        at("2025-01-05T03:00:00"),
        at("2024-12-29T03:00:00"),
        at("2024-12-21T03:00:00"),
    }
    # The same week number of another year is another week.
    years = [at("2023-01-02T03:00:00"), at("2024-01-01T03:00:00")]  # both in week 1 of their ISO year
    assert archives_to_keep(years, keep_daily=0, keep_weekly=2) == set(years)
    # Days and weeks together: the last 2 days, plus the weeks' newest (already among them, or not).
    assert archives_to_keep(taken, keep_daily=2, keep_weekly=2) == {
        at("2025-01-05T03:00:00"),
        at("2025-01-02T03:00:00"),
        at("2024-12-29T03:00:00"),
    }


def test_five_weeks_of_nightly_backups_keep_seven_days_and_four_weeks():
    start = at("2024-01-01T02:30:00")  # a Monday
    taken = [start + timedelta(days=n) for n in range(35)]  # to Sunday 2024-02-04
    kept = archives_to_keep(taken, keep_daily=7, keep_weekly=4)
    last_week = {start + timedelta(days=n) for n in range(28, 35)}
    sundays = {at("2024-01-28T02:30:00"), at("2024-01-21T02:30:00"), at("2024-01-14T02:30:00")}
    assert kept == last_week | sundays  # the last week's Sunday is both a daily and a weekly: 10, not 11


# -- names, plans and pruning on disk --------------------------------------------------------------------------------


def test_names_round_trip_and_only_exact_names_are_archives():
    tenant = uuid.uuid4()
    moment = datetime(2026, 3, 14, 2, 15, 9, 999, tzinfo=UTC)
    assert archive_name(moment) == "mnemostore-20260314T021509Z.tar"
    assert archive_name(moment, compress=True, tenant_id=tenant) == f"mnemostore-{tenant}-20260314T021509Z.tar.gz"
    parsed = parse_archive_name(archive_name(moment, tenant_id=tenant))
    assert parsed is not None and parsed.taken_at == moment.replace(microsecond=0) and parsed.tenant_id == tenant
    paris = timezone(timedelta(hours=1))
    assert archive_name(datetime(2026, 3, 14, 3, 15, 9, tzinfo=paris)) == "mnemostore-20260314T021509Z.tar"
    for other in (
        "mnemostore-20260314T021509Z.tar.failed",
        "mnemostore-20260314T021509Z",  # a folder archive: --into never writes one
        "mnemostore-20260314T021509Z.tgz",
        "mnemostore-20261341T021509Z.tar",  # the shape of a time, not a time
        "xmnemostore-20260314T021509Z.tar",
        "mnemostore-20260314T021509Z.tar.gz.partial",
        ".mnemostore-20260314T021509Z.tar.partial-1234abcd",
        "mnemostore-not-a-uuid-20260314T021509Z.tar",
        "notes.txt",
    ):
        assert parse_archive_name(other) is None, other


def test_a_plan_keeps_other_series_other_files_and_the_archive_just_written():
    tenant = uuid.uuid4()
    full = [archive_name(at(f"2024-05-{d:02d}T01:00:00")) for d in range(1, 6)]
    theirs = [archive_name(at(f"2024-05-{d:02d}T01:00:00"), tenant_id=tenant) for d in range(1, 6)]
    names = [*full, *theirs, "README", "mnemostore-20240501T010000Z.tar.failed"]
    plan = plan_retention(names, keep_daily=2, keep_weekly=0)
    assert plan == RetentionPlan(keep=(full[4], full[3]), delete=(full[2], full[1], full[0]))
    assert plan_retention(names, keep_daily=1, keep_weekly=0, tenant_id=tenant).keep == (theirs[4],)
    # A clock set back: the archive just written looks older than the others, and stays all the same.
    just_written = archive_name(at("2024-04-30T01:00:00"))
    plan = plan_retention([*full, just_written], keep_daily=1, keep_weekly=0, protect=just_written)
    assert plan.keep == (full[4], just_written)
    # A .tar and a .tar.gz of the same second are the same moment: both stay.
    both = [archive_name(at("2024-05-05T01:00:00"), compress=True), *full]
    assert set(plan_retention(both, keep_daily=1, keep_weekly=0).keep) == {full[4], both[0]}


def test_prune_deletes_only_regular_files_named_like_archives(tmp_path: Path):
    old = archive_name(at("2024-05-01T01:00:00"))
    new = archive_name(at("2024-05-02T01:00:00"))
    linked = archive_name(at("2024-04-01T01:00:00"))
    folder_named_like_one = archive_name(at("2024-03-01T01:00:00"))
    for name in (old, new, "keep-me.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / linked).symlink_to(tmp_path / "keep-me.txt")
    (tmp_path / folder_named_like_one).mkdir()
    assert list_archives(tmp_path) == [old, new]  # the link and the folder are not archives
    forged = RetentionPlan(keep=(new,), delete=(old, linked, folder_named_like_one, "keep-me.txt"))
    assert prune(tmp_path, forged) == [tmp_path / old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new, linked, folder_named_like_one, "keep-me.txt"])
    assert list_archives(tmp_path / "missing") == []


# -- runs of a scheduled backup, with the time given -----------------------------------------------------------------


def test_a_week_of_nightly_runs_keeps_the_right_archives(backend: str, databases: Databases, tmp_path: Path):
    url = databases.seeded(backend)
    into = tmp_path / "nightly"
    nights = [at("2024-12-27T02:00:00") + timedelta(days=n) for n in range(6)]  # Friday to Wednesday
    with MnemoStore(url) as store:
        for night in nights:
            run = scheduled_backup(store, into, now=night, keep_daily=2, keep_weekly=1, compress=True)
            assert run.result is not None and run.path.exists()
        assert sorted(list_archives(into)) == [archive_name(n, compress=True) for n in nights[-2:]]
        # keep_weekly=1 is this ISO week only (2025-W01 began on Monday the 30th): Sunday 29th went with the rest.
        # Two weeks kept the next night bring nothing of 2024-W52 back: only the 31st goes.
        run = scheduled_backup(store, into, now=nights[-1] + timedelta(days=1), keep_daily=2, keep_weekly=2)
        assert run.plan is not None and len(run.deleted) == 1
        assert [p.name for p in run.deleted] == [archive_name(nights[-2], compress=True)]
        # A dry run writes and deletes nothing, and plans with the archive it would write.
        before = sorted(p.name for p in into.iterdir())
        later = nights[-1] + timedelta(days=2)
        dry = scheduled_backup(store, into, now=later, keep_daily=1, keep_weekly=0, dry_run=True)
        assert dry.result is None and dry.plan is not None and dry.plan.keep == (archive_name(later),)
        assert sorted(p.name for p in into.iterdir()) == before
        # No keep option: nothing is pruned, and a second run in the same second is refused, not overwritten.
        scheduled_backup(store, into, now=later)
        assert len(list_archives(into)) == len(before) + 1
        with pytest.raises(BackupError, match="already exists"):
            scheduled_backup(store, into, now=later)
    assert not [p for p in into.iterdir() if p.name.startswith(".")]  # no staging or scratch folder left behind


def test_verify_restores_into_a_scratch_database_and_catches_a_bad_archive(
    backend: str, databases: Databases, tmp_path: Path
):
    url = databases.seeded(backend)
    into = tmp_path / "verified"
    with MnemoStore(url) as store:
        run = scheduled_backup(store, into, now=at("2024-06-01T02:00:00"), verify=True, keep_daily=1)
        assert run.verified is not None and run.verified.backend == (
            "postgresql" if backend == "postgres" else "sqlite"
        )
        assert run.result is not None
        assert run.verified.rows == {e.name: e.rows for e in run.result.manifest.tables}
        assert run.verified.total_rows == run.result.manifest.total_rows > 0
        settings = store.settings
    assert dump(url)  # the source is untouched: still its rows
    if backend == "postgres":
        assert _scratch_databases(url) == []
    # A folder archive whose table was altered (checksums recomputed or not) does not verify.
    with MnemoStore(url) as store:
        folder = store.backup(tmp_path / "plain").path
    messages = folder / "tables" / "messages.jsonl"
    messages.write_bytes(messages.read_bytes().replace(b"ada", b"eve", 1))
    with pytest.raises(BackupVerificationFailed, match="does not restore into a scratch database") as caught:
        verify_archive(folder, settings)
    assert "checksum" in str(caught.value) or "SHA-256" in str(caught.value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mnemostore-verify-")]
    if backend == "postgres":
        assert _scratch_databases(url) == []


def test_row_counts_are_compared_table_by_table():
    entries = tuple(TableEntry(name, f"tables/{name}.jsonl", rows, 0, "0" * 64, (), ("id",)) for name, rows in
                    (("tenants", 2), ("messages", 12)))  # fmt: skip
    manifest = BackupManifest("0012", Scope(), entries, at("2024-01-01T00:00:00"), "sqlite", "0")
    counted = {"tenants": 2, "messages": 12}
    assert count_mismatches(manifest, counted) == []
    assert count_mismatches(manifest, {"tenants": 2, "messages": 11}) == [
        "messages: 11 rows restored, the archive holds 12"
    ]
    # A table the archive does not list must come out empty.
    assert count_mismatches(manifest, {**counted, "users": 1}) == ["users: 1 rows restored, the archive holds 0"]


def _scratch_databases(url: str) -> list[str]:
    dsn = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'mnemostore_verify_%'").fetchall()
    return [r[0] for r in rows]


# -- the command -----------------------------------------------------------------------------------------------------


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--database-url", url, *args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def test_cli_backup_into_keeps_daily_and_weekly_and_verifies(backend: str, databases: Databases, tmp_path: Path):
    url = databases.seeded(backend)
    into = tmp_path / "backups"
    into.mkdir()
    # Older nights already there (pruning reads names only), two weeks of them, and files that are not archives.
    nights = [at("2024-01-08T02:00:00") + timedelta(days=n) for n in range(14)]  # Monday 8th to Sunday 21st
    for night in nights:
        (into / archive_name(night)).write_bytes(b"")
    tenant_archive = into / archive_name(nights[0], tenant_id=uuid.uuid4())
    for other in (tenant_archive, into / "notes.txt", into / f"{archive_name(nights[0])}.failed"):
        other.write_text("not mine to delete")

    args = ("backup", "--into", str(into), "--keep-daily", "3", "--keep-weekly", "3")
    dry = ok(run(url, *args, "--dry-run")).stdout
    assert "Dry run" in dry and "Would delete 11 old archive(s)" in dry
    assert len(list_archives(into)) == 15  # 14 nights and the tenant's: nothing written, nothing deleted

    out = ok(run(url, *args, "--verify", "--compress")).stdout
    assert "Backed up the database" in out and "Verified:" in out and "Deleted 11 old archive(s)" in out
    written = [n for n in list_archives(into) if n.endswith(".tar.gz")]
    assert len(written) == 1
    # Kept: the new one (today: its day and its week), the 2 other last days that have archives (20th, 21st), and
    # the newest of each of the 2 other last weeks that have archives (Sunday 21st, already kept, and Sunday 14th).
    expected = {written[0], archive_name(nights[-1]), archive_name(nights[-2]), archive_name(nights[6])}
    mine = {n for n in list_archives(into) if parse_archive_name(n).tenant_id is None}  # type: ignore[union-attr]
    assert mine == expected
    assert tenant_archive.exists() and (into / "notes.txt").exists()
    assert (into / f"{archive_name(nights[0])}.failed").exists()
    # The new archive restores into a new database.
    target = databases.new(backend)
    ok(run(target, "restore", str(into / written[0]), "--verify"))
    assert dump(target) == dump(url)


def test_cli_refuses_options_without_their_partner(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    for args, message in (
        (("backup",), "give either PATH or --into DIR"),
        (("backup", str(tmp_path / "a"), "--into", str(tmp_path)), "give either PATH or --into DIR"),
        (("backup", str(tmp_path / "a"), "--keep-daily", "3"), "--keep-daily needs --into DIR"),
        (("backup", str(tmp_path / "a"), "--dry-run"), "--dry-run needs --into DIR"),
    ):
        result = run(url, *args)
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)


@pytest.mark.postgres_only
def test_cli_verify_without_createdb_fails_sets_the_archive_aside_and_prunes_nothing(
    databases: Databases, tmp_path: Path
):
    url = databases.seeded("postgres")
    owner = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    login = f"mnemostore_backup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{login}" LOGIN NOCREATEDB')
        conn.execute(f'GRANT "mnemostore_admin" TO "{login}"')
    try:
        limited = make_url(url).set(username=login, password=None).render_as_string(hide_password=False)
        into = tmp_path / "backups"
        into.mkdir()
        old = into / archive_name(at("2024-01-01T02:00:00"))
        old.write_bytes(b"")
        result = run(limited, "backup", "--into", str(into), "--keep-daily", "1", "--verify")
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        message = result.stderr.strip()
        assert message.startswith("error: --verify could not create the scratch database") and "CREATEDB" in message
        assert "set aside as" in message and "no archive was pruned" in message
        assert old.exists()  # nothing pruned
        failed = [p for p in into.iterdir() if p.name.endswith(".tar.failed")]
        assert len(failed) == 1 and list_archives(into) == [old.name]
    finally:
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [login])
            conn.execute(f'DROP ROLE IF EXISTS "{login}"')


def test_settings_of_the_scratch_keep_keys_and_drop_redis(tmp_path: Path):
    from mnemostore.ops._scratch import create_scratch, drop_scratch

    source = Settings(database_url=f"sqlite:///{tmp_path / 'live.db'}", redis_url="redis://127.0.0.1:6379/0")
    scratch = create_scratch(source, near=tmp_path / "archives")
    try:
        assert scratch.settings.redis_url is None and scratch.settings.database_url != source.database_url
        assert scratch.folder is not None and scratch.folder.parent == tmp_path / "archives"
        assert scratch.folder.name.startswith(".mnemostore-verify-")  # hidden, and never named like an archive
    finally:
        drop_scratch(scratch, source)
    assert scratch.folder is not None and not scratch.folder.exists()
    assert os.listdir(tmp_path / "archives") == []


def test_the_example_schedules_in_deploy_are_commands_that_run(tmp_path: Path):
    deploy = Path(__file__).resolve().parent.parent / "deploy"
    service = (deploy / "systemd" / "mnemostore-backup.service").read_text()
    cron = (deploy / "cron" / "mnemostore-backup").read_text()
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    cron_line = next(line for line in cron.splitlines() if line and line[0].isdigit())
    assert "OnCalendar=" in (deploy / "systemd" / "mnemostore-backup.timer").read_text()
    url = f"sqlite:///{tmp_path / 'live.db'}"
    with MnemoStore(url) as store:
        store.migrate()
    for line in (exec_start, cron_line):
        args = line.split("/opt/mnemostore/bin/mnemostore ", 1)[1].split()
        assert args[:3] == ["backup", "--into", "/var/backups/mnemostore"], line
        assert {"--verify", "--keep-daily", "--keep-weekly"} <= set(args)
        args[2] = str(tmp_path / "backups")
        out = ok(run(url, *args, "--dry-run")).stdout
        assert "Dry run: would back up the database" in out
