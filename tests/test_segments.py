"""Segments as the services keep them: create, rename, (soft) delete, export rows, audit."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.audit import recent, sentence
from bot.campaigns.service import create_campaign, exclude, set_state, target
from bot.imports.batches import create_batch, create_upload_batch
from bot.imports.importer import import_files
from bot.notify import BATCH_CHANGED, report_key
from bot.segments import (
    NO_CAMPAIGNS,
    SegmentInUse,
    busy_import,
    campaigns_using,
    delete_segment,
    rename_segment,
    uses_key,
    write_export,
)
from bot.workspaces import (
    WorkspaceError,
    create_segment,
    ensure_workspace,
    find_segment,
    get_segment,
    import_target,
    segment_sizes,
)
from models import BatchStatus, CampaignState, Database, ImportBatch, SegmentKind
from models.contacts import ALL_CUSTOMERS
from tests.waiting import backend_pid, pause_segment_deletion, until_waiting_or_done

TEAM, OTHER = "T0001", "T0002"
PEOPLE = ("first_name,last_name,email,locale,Accepts Email Marketing\n"
          "Ana,Lopez,ana@example.com,es,yes\n"
          "=cmd|' /C calc'!A0,Evil,evil@example.com,,no\n"
          "Bo,,bo@example.com,sv,yes\n")  # fmt: skip


async def _import(db: Database, segment: str, csv_text: str = PEOPLE, team: str = TEAM) -> None:
    await import_files(db, team, [("people.csv", io.BytesIO(csv_text.encode()))],
                       segment=segment, create_segment=True)  # fmt: skip


async def _count(db: Database, sql: str, **params: object) -> int:
    async with db.begin() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


@pytest.fixture
async def team(db: Database) -> Database:
    await ensure_workspace(db, TEAM)
    await ensure_workspace(db, OTHER)
    return db


async def test_create_records_who_and_keeps_names_unique(team: Database) -> None:
    db = team
    vip = await create_segment(db, TEAM, "  VIP   customers ", actor="U0002")
    assert vip.name == "VIP customers"
    await create_segment(db, TEAM, "Newsletter")  # callers that name no actor: "cli"
    for taken, why in (("vip  CUSTOMERS", "already exists"), ("all customers", "built in"),
                       ("Deleted:12", "reserved"), ("", "needs a name"), ("x" * 101, "at most")):
        with pytest.raises(WorkspaceError, match=why):
            await create_segment(db, TEAM, taken)
    assert (await create_segment(db, OTHER, "VIP customers")).team_id == OTHER  # per workspace
    entries = [(e.actor, e.action, e.subject) for e in await recent(db, TEAM)]
    assert entries == [("cli", "segment.created", "Newsletter"),
                       ("U0002", "segment.created", "VIP customers")]  # fmt: skip


async def test_names_that_look_the_same_are_one_name(team: Database) -> None:
    """An accent macOS wrote decomposed, or a zero-width space pasted from a document, made
    a second segment that looked exactly like the first."""
    await create_segment(team, TEAM, "Caf\u00e9")
    vip = await create_segment(team, TEAM, "VIP\u200b")  # stored as people see it
    assert vip.name == "VIP"
    for twin in ("Cafe\u0301", "\u200bVIP", "V\u2060IP", "VIP\u00ad"):
        with pytest.raises(WorkspaceError, match="already exists"):
            await create_segment(team, TEAM, twin)
    with pytest.raises(WorkspaceError, match="needs a name"):
        await create_segment(team, TEAM, "\u200b\u2060")
    found = await find_segment(team, TEAM, "cafe\u0301")
    assert found is not None and found.name == "Caf\u00e9"
    coder = "\U0001f469\u200d\U0001f4bb"  # woman technologist: joined, not two emoji
    assert (await create_segment(team, TEAM, f"{coder} team")).name == f"{coder} team"
    assert (await create_segment(team, TEAM, "\U0001f469\U0001f4bb team")).id is not None


@pytest.mark.parametrize("mark", ["\u200e", "\u200f", "\u2066", "\u2063", "\u180e",
                                  "\u034f", "\u202c", "\ufe0f"])  # fmt: skip
async def test_no_character_that_shows_nothing_makes_a_second_name(
    team: Database, mark: str,
) -> None:
    """A left-to-right mark copied from RTL text (or another character that shows nothing:
    a bidi isolate, U+2063, a variation selector) made a second "VIP" that looked exactly like
    the first, and a second All Customers."""
    await create_segment(team, TEAM, "VIP")
    for twin in (f"VIP{mark}", f"{mark}VIP", f"V{mark}IP"):
        with pytest.raises(WorkspaceError, match="'VIP' already exists"):
            await create_segment(team, TEAM, twin)
        found = await find_segment(team, TEAM, twin)
        assert found is not None and found.name == "VIP"
    with pytest.raises(WorkspaceError, match="built in"):
        await create_segment(team, TEAM, f"All Customers{mark}")
    with pytest.raises(WorkspaceError, match="needs a name"):
        await create_segment(team, TEAM, f"{mark} {mark}")


async def test_a_name_keeps_the_characters_that_shape_how_it_shows(team: Database) -> None:
    """Only the comparison ignores them: the heart stays the emoji (U+FE0F), and the flags
    of Scotland and England (tags after 🏴) stay two names."""
    heart = await create_segment(team, TEAM, "\u2764\ufe0f fans")
    assert heart.name == "\u2764\ufe0f fans"
    with pytest.raises(WorkspaceError, match="already exists"):
        await create_segment(team, TEAM, "\u2764 fans")
    scotland, england = ("\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in tag) + "\U000e007f"
                         for tag in ("gbsct", "gbeng"))
    await create_segment(team, TEAM, f"{scotland} fans")
    assert (await create_segment(team, TEAM, f"{england} fans")).name == f"{england} fans"


async def test_racing_creates_of_one_name_make_one_segment(team: Database) -> None:
    results = await asyncio.gather(*(create_segment(team, TEAM, f"Spring{' ' * i}")
                                     for i in range(4)), return_exceptions=True)  # fmt: skip
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, WorkspaceError)]
    assert len(made) == 1 and len(refused) == 3, results
    assert "already exists" in str(refused[0])
    created = "SELECT COUNT(*) FROM audit_entry WHERE action = 'segment.created'"
    assert await _count(team, created) == 1


async def test_rename_follows_the_same_rules_and_is_audited(team: Database) -> None:
    db = team
    vip = await create_segment(db, TEAM, "vip")
    await create_segment(db, TEAM, "Newsletter")
    everyone = await find_segment(db, TEAM, "All Customers")
    assert everyone is not None and vip.id is not None
    with pytest.raises(WorkspaceError, match="'Newsletter' already exists"):
        await rename_segment(db, TEAM, vip.id, " newsletter ")
    with pytest.raises(WorkspaceError, match="built in"):
        await rename_segment(db, TEAM, vip.id, "All  customers")
    with pytest.raises(WorkspaceError, match="can't be renamed"):
        await rename_segment(db, TEAM, everyone.id or 0, "Everyone")
    with pytest.raises(WorkspaceError, match="no longer exists"):  # another workspace's id
        await rename_segment(db, OTHER, vip.id, "Mine now")
    renamed = await rename_segment(db, TEAM, vip.id, "VIP", actor="U0002")  # case only: fine
    assert (renamed.old, renamed.new) == ("vip", "VIP")
    assert (await get_segment(db, TEAM, vip.id)).name == "VIP"
    (entry, *_) = await recent(db, TEAM)
    assert (entry.actor, entry.action, entry.subject, entry.detail) == (
        "U0002", "segment.renamed", "VIP", "was vip")


async def test_delete_is_soft_frees_the_name_and_keeps_the_contacts(team: Database) -> None:
    db = team
    await _import(db, "VIP")
    await _import(db, "Newsletter", "email\nana@example.com\n")
    vip = await find_segment(db, TEAM, "vip")
    assert vip is not None and vip.id is not None
    spring = await create_campaign(db, TEAM, "Referral spring", store_url="https://s.example",
                                   created_by="U0002")  # fmt: skip
    await target(db, TEAM, spring.id or 0, vip.id, requested_by="U0002")

    deleted = await delete_segment(db, TEAM, vip.id, actor="U0002")
    assert (deleted.name, deleted.members) == ("VIP", 3)
    assert [(c.name, c.role) for c in deleted.campaigns] == [("Referral spring", "target")]
    row = await _count(db, "SELECT COUNT(*) FROM segment WHERE id = :s AND kind = 'deleted' "
                           "AND name = 'VIP' AND name_key = :k", s=vip.id,
                       k=f"deleted:{vip.id}")  # fmt: skip
    assert row == 1
    assert await _count(db, "SELECT COUNT(*) FROM segment_member WHERE segment_id = :s",
                        s=vip.id) == 0  # fmt: skip
    assert await _count(db, "SELECT COUNT(*) FROM campaign_segment") == 0
    # every read path skips it; its contacts stay in All Customers (and Newsletter)
    assert [(s.name, n) for s, n in await segment_sizes(db, TEAM)] == [
        ("All Customers", 3), ("Newsletter", 1)]
    assert await find_segment(db, TEAM, "VIP") is None
    with pytest.raises(WorkspaceError, match=r"That segment no longer exists\."):
        await get_segment(db, TEAM, vip.id)
    with pytest.raises(WorkspaceError, match="No segment named 'VIP'"):
        await import_target(db, TEAM, "VIP", create=False)
    # the loser of a second delete is told it's gone; the name is free again
    with pytest.raises(WorkspaceError, match="'VIP' was already deleted"):
        await delete_segment(db, TEAM, vip.id)
    again = await create_segment(db, TEAM, "vip")
    assert again.id != vip.id
    (entry, *_) = [e for e in await recent(db, TEAM) if e.action == "segment.deleted"]
    assert (entry.actor, entry.subject) == ("U0002", "VIP")
    assert entry.detail == ("3 contacts taken out; they stay in All Customers; "
                            "targeted by Referral spring")  # fmt: skip
    # one pair of brackets in the log's sentence: it had the detail's own inside them
    assert sentence(entry) == ("deleted the segment VIP (3 contacts taken out; they stay in "
                               "All Customers; targeted by Referral spring)")  # fmt: skip


async def test_racing_deletes_one_wins(team: Database) -> None:
    await _import(team, "VIP")
    vip = await find_segment(team, TEAM, "VIP")
    assert vip is not None
    results = await asyncio.gather(*(delete_segment(team, TEAM, vip.id or 0) for _ in range(3)),
                                   return_exceptions=True)  # fmt: skip
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    assert all("already deleted" in str(r) for r in results if isinstance(r, BaseException))
    assert await _count(team, "SELECT COUNT(*) FROM audit_entry "
                              "WHERE action = 'segment.deleted'") == 1  # fmt: skip


async def test_delete_is_refused_for_all_customers_busy_imports_and_other_teams(
    team: Database,
) -> None:
    db = team
    everyone = await find_segment(db, TEAM, "All Customers")
    assert everyone is not None
    with pytest.raises(WorkspaceError, match="can't be deleted"):
        await delete_segment(db, TEAM, everyone.id or 0)
    vip = await create_segment(db, TEAM, "VIP")
    with pytest.raises(WorkspaceError, match="no longer exists"):
        await delete_segment(db, OTHER, vip.id or 0)
    async with db.session() as session:
        batch = ImportBatch(team_id=TEAM, segment_id=vip.id or 0, requested_by="U0001")
        session.add(batch)
        await session.commit()
        batch_id = batch.id
    message = f"Import #{batch_id} into it is waiting for review: finish or cancel it first."
    assert await busy_import(db, TEAM, vip.id or 0) == message
    with pytest.raises(WorkspaceError, match=message):
        await delete_segment(db, TEAM, vip.id or 0)
    assert (await get_segment(db, TEAM, vip.id or 0)).kind == SegmentKind.STATIC  # rolled back
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET status = :s"),
                           {"s": BatchStatus.CANCELLED})  # fmt: skip
    assert (await delete_segment(db, TEAM, vip.id or 0)).name == "VIP"
    entries = [e.action for e in await recent(db, TEAM)]
    assert entries.count("segment.deleted") == 1


async def test_drafts_the_shell_left_behind_dont_keep_their_segment(
    team: Database, tmp_path: Path
) -> None:
    """A shell import (or dry run) killed while staging left a draft with no review message
    and no job: nothing could cancel it, and deleting its segment was refused for good.
    Deleting withdraws such drafts now, and their rows are purged as any cancelled import's;
    a Slack draft awaiting review and an `import --background` still keep theirs."""
    from bot.imports.background import enqueue_file_import
    from bot.imports.batches import add_source, stage_csv
    from bot.imports.retention import purge_staged
    from bot.imports.review import set_message
    from models import SourceKind

    db = team
    vip = await create_segment(db, TEAM, "VIP")
    killed = await create_batch(db, TEAM, vip.id or 0, "cli")  # what `import` makes first
    source = await add_source(db, TEAM, killed.id or 0, SourceKind.CSV, "people.csv")
    await stage_csv(db, TEAM, source.id or 0, io.BytesIO(PEOPLE.encode()), name="people.csv")
    dry = await create_batch(db, TEAM, vip.id or 0, "cli", dry_run=True)  # `--dry-run`'s
    assert await busy_import(db, TEAM, vip.id or 0) is None  # Slack's Delete offers it
    await delete_segment(db, TEAM, vip.id or 0, actor="U0002")
    async with db.begin() as conn:
        ended = (await conn.execute(text(
            "SELECT id, status, cancelled_by, finished_at IS NOT NULL FROM import_batch "
            "ORDER BY id"))).all()  # fmt: skip
    assert [tuple(r) for r in ended] == [(killed.id, "cancelled", "U0002", True),
                                         (dry.id, "cancelled", "U0002", True)]  # fmt: skip
    cancelled = [(e.actor, e.subject, e.detail) for e in await recent(db, TEAM)
                 if e.action == "import.cancelled"]  # the dry run was never audited
    assert cancelled == [("U0002", f"import #{killed.id}", "withdrawn: its segment was deleted")]
    assert await _count(db, "SELECT COUNT(*) FROM staged_row") == 3  # its rows, until purged
    await purge_staged(db, TEAM, 0)
    assert await _count(db, "SELECT COUNT(*) FROM staged_row") == 0

    slack = await create_segment(db, TEAM, "Slack")
    review = await create_batch(db, TEAM, slack.id or 0, "U0001")
    await set_message(db, TEAM, review.id or 0, channel_id="C1", message_ts="1.2")
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE)
    background = await create_segment(db, TEAM, "Background")
    await enqueue_file_import(db, TEAM, [people], segment="Background")
    for segment, batch_id, words in ((slack, review.id, "is waiting for review"),
                                     (background, (review.id or 0) + 1, "is queued")):
        message = f"Import #{batch_id} into it {words}: finish or cancel it first."
        assert await busy_import(db, TEAM, segment.id or 0) == message
        with pytest.raises(WorkspaceError, match=message):
            await delete_segment(db, TEAM, segment.id or 0)


async def test_a_slack_draft_whose_review_was_never_posted_stops_keeping_its_segment(
    team: Database,
) -> None:
    """The process making a Slack import died between the draft and its review message (a
    restart): deleting the segment said "Import #1 into it is waiting for review" for good,
    of a review nobody could see, approve or cancel. Past the time a review takes to post,
    such a draft is withdrawn as the shell's are; before it, it may still be on its way."""
    from datetime import timedelta

    from sqlalchemy import bindparam
    from sqlmodel.sql.sqltypes import UTCDateTime

    from models.clock import utcnow

    db = team
    vip = await create_segment(db, TEAM, "VIP")
    orphan = await create_batch(db, TEAM, vip.id or 0, "U0001", consent=True)  # then killed
    message = f"Import #{orphan.id} into it is waiting for review: finish or cancel it first."
    assert await busy_import(db, TEAM, vip.id or 0) == message
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET created_at = :then").bindparams(
            bindparam("then", type_=UTCDateTime())),
            {"then": utcnow() - timedelta(minutes=11)})  # past ORPHANED_AFTER  # fmt: skip
    assert await busy_import(db, TEAM, vip.id or 0) is None
    await delete_segment(db, TEAM, vip.id or 0, actor="U0002")
    assert await _count(db, "SELECT COUNT(*) FROM import_batch WHERE status = 'cancelled' "
                            "AND cancelled_by = 'U0002'") == 1  # fmt: skip


async def test_a_background_import_is_said_queued_then_running_not_waiting_for_review(
    team: Database, tmp_path: Path
) -> None:
    """`import --background` is a draft until its job has read the files, but nobody reviews
    it: deleting its segment said it "is waiting for review", and people looked for a review
    message that never comes. It is queued, then running once a worker took its job."""
    from bot.imports.background import enqueue_file_import
    from bot.jobs.queue import claim_by_key

    db = team
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE)
    vip = await create_segment(db, TEAM, "VIP")
    job = await enqueue_file_import(db, TEAM, [people], segment="VIP")
    batch_id = json.loads(job.payload)["batch_id"]
    for words in ("is queued", "is running"):
        if words == "is running":  # a worker took its job: it reads the files
            assert await claim_by_key(db, TEAM, f"import:{batch_id}", "w1", 60) is not None
        message = f"Import #{batch_id} into it {words}: finish or cancel it first."
        assert await busy_import(db, TEAM, vip.id or 0) == message
        with pytest.raises(WorkspaceError, match=message):
            await delete_segment(db, TEAM, vip.id or 0, actor="U0002")


async def test_a_background_import_commits_with_its_job_or_not_at_all(
    team: Database, tmp_path: Path
) -> None:
    """`import --background`'s draft, its files and its job commit in one transaction. They
    were committed one after the other: a draft with no job in between, which deleting its
    segment withdraws as a shell's left behind (the shell then told "already cancelled by
    <@U…>"), and a failure there left that draft for good. Here the job's INSERT fails (a
    trigger refuses it): nothing of the import is left."""
    from bot.imports.background import enqueue_file_import

    db = team
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE)
    await create_segment(db, TEAM, "VIP")
    async with db.begin() as conn:
        if db.is_sqlite:
            await conn.execute(text(
                "CREATE TRIGGER refuse_import_job BEFORE INSERT ON job WHEN NEW.kind = 'import' "
                "BEGIN SELECT RAISE(ABORT, 'no import jobs now'); END"))  # fmt: skip
        else:
            await conn.execute(text(
                "CREATE FUNCTION refuse_import_job() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'no import jobs now'; END $$"))  # fmt: skip
            await conn.execute(text(
                "CREATE TRIGGER refuse_import_job BEFORE INSERT ON job FOR EACH ROW "
                "WHEN (NEW.kind = 'import') EXECUTE FUNCTION refuse_import_job()"))  # fmt: skip
    with pytest.raises(Exception):  # noqa: B017  (the driver's error, whichever it is)
        await enqueue_file_import(db, TEAM, [people], segment="VIP")
    assert await _count(db, "SELECT COUNT(*) FROM import_batch") == 0
    assert await _count(db, "SELECT COUNT(*) FROM import_source") == 0


async def test_an_excluded_segment_is_unlinked_too(team: Database) -> None:
    staff = await create_segment(team, TEAM, "Staff")
    spring = await create_campaign(team, TEAM, "Spring", store_url="https://s.example",
                                   created_by="U0002")  # fmt: skip
    await exclude(team, TEAM, spring.id or 0, staff.id or 0)
    deleted = await delete_segment(team, TEAM, staff.id or 0)
    assert deleted.campaigns[0].consequence().startswith("Spring excludes it")
    assert await _count(team, "SELECT COUNT(*) FROM campaign_segment") == 0


async def test_deleting_an_excluded_segment_says_when_its_contacts_are_enrolled(
    team: Database,
) -> None:
    """Only a live campaign enrolls at once: deleting a segment a draft or paused campaign
    excluded told the lead its contacts "are enrolled now"."""
    staff = await create_segment(team, TEAM, "Staff")
    for name, state in (("Autumn", None), ("Spring", CampaignState.LIVE),
                        ("Summer", CampaignState.PAUSED)):
        campaign = await create_campaign(team, TEAM, name, store_url="https://s.example",
                                         created_by="U0002")  # fmt: skip
        await exclude(team, TEAM, campaign.id or 0, staff.id or 0)
        if state is not None:  # paused: it was live first (a draft can't be paused)
            await set_state(team, TEAM, campaign.id or 0, CampaignState.LIVE, requested_by="U0002")
            await set_state(team, TEAM, campaign.id or 0, state, requested_by="U0002")
    deleted = await delete_segment(team, TEAM, staff.id or 0)
    said = [use.consequence() for use in deleted.campaigns]
    assert [s.split(":")[0] for s in said] == ["Autumn excludes it", "Spring excludes it",
                                               "Summer excludes it"]  # fmt: skip
    assert said[0].endswith("will be enrolled when it goes live.")
    assert said[1].endswith("are enrolled now (and invited, if it sends invites).")
    assert said[2].endswith("will be enrolled when it resumes.")


async def test_a_delete_checks_the_campaigns_it_was_confirmed_with(team: Database) -> None:
    """A confirmation's campaigns (their uses_key) are checked in the delete's transaction:
    another one using the segment, or one going live that excludes it, holds it back."""
    staff = await create_segment(team, TEAM, "Staff")
    spring = await create_campaign(team, TEAM, "Spring", store_url="https://s.example",
                                   created_by="U0002")  # fmt: skip
    await exclude(team, TEAM, spring.id or 0, staff.id or 0)
    with pytest.raises(SegmentInUse) as held:  # Slack's dialog said no campaign used it
        await delete_segment(team, TEAM, staff.id or 0, expect_campaigns=NO_CAMPAIGNS)
    assert [c.name for c in held.value.campaigns] == ["Spring"]
    shown = uses_key(await campaigns_using(team, TEAM, staff.id or 0))
    await set_state(team, TEAM, spring.id or 0, CampaignState.LIVE, requested_by="U0002")
    with pytest.raises(SegmentInUse):  # "will be enrolled when it goes live": now at once
        await delete_segment(team, TEAM, staff.id or 0, expect_campaigns=shown)
    assert (await get_segment(team, TEAM, staff.id or 0)).kind == SegmentKind.STATIC
    assert await _count(team, "SELECT COUNT(*) FROM campaign_segment") == 1
    assert all(e.action != "segment.deleted" for e in await recent(team, TEAM))

    shown = uses_key(await campaigns_using(team, TEAM, staff.id or 0))
    deleted = await delete_segment(team, TEAM, staff.id or 0, expect_campaigns=shown)
    assert [c.name for c in deleted.campaigns] == ["Spring"]
    assert await _count(team, "SELECT COUNT(*) FROM campaign_segment") == 0


async def test_a_rename_queues_a_redraw_of_the_segments_open_reviews(team: Database) -> None:
    """From the shell too: a review said "into VIP" after VIP was renamed."""
    vip = await create_segment(team, TEAM, "VIP")
    other = await create_segment(team, TEAM, "Other")
    batches = []
    async with team.session() as session:
        for segment, status, ts in ((vip, BatchStatus.DRAFT, "1.0001"),  # an open review
                                    (vip, BatchStatus.DRAFT, None),  # the shell's: no message
                                    (vip, BatchStatus.REJECTED, "1.0002"),
                                    (other, BatchStatus.DRAFT, "1.0003")):
            batch = ImportBatch(team_id=TEAM, segment_id=segment.id or 0, requested_by="U0002",
                                status=status, channel_id="C0001", message_ts=ts)
            session.add(batch)
            batches.append(batch)
        await session.commit()
        ids = [b.id or 0 for b in batches]
    await rename_segment(team, TEAM, vip.id or 0, "Gold")
    keys = [report_key(BATCH_CHANGED, {"batch_id": batch_id}) for batch_id in ids]
    queued = [await _count(team, "SELECT COUNT(*) FROM job WHERE dedupe_key = :k", k=key)
              for key in keys]
    assert queued == [1, 0, 0, 0]


async def test_export_is_formula_safe_and_carries_consent(team: Database) -> None:
    await _import(team, "VIP")
    vip = await find_segment(team, TEAM, "VIP")
    assert vip is not None
    out = io.StringIO()
    assert await write_export(team, TEAM, vip.id or 0, out) == 3
    header, *rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert header == ["first_name", "last_name", "email", "locale", "subscribed"]
    assert sorted(rows, key=lambda r: r[2]) == [
        ["Ana", "Lopez", "ana@example.com", "es", "yes"],
        ["Bo", "", "bo@example.com", "sv", "yes"],
        ["'=cmd|' /C calc'!A0", "Evil", "evil@example.com", "", "no"],
    ]
    await delete_segment(team, TEAM, vip.id or 0)
    with pytest.raises(WorkspaceError, match="no longer exists"):
        await write_export(team, TEAM, vip.id or 0, io.StringIO())


async def test_all_customers_exports_this_workspaces_contacts_by_address(
    team: Database,
) -> None:
    await _import(team, "VIP")
    await _import(team, "Theirs", "email\nzed@other.example\nann@other.example\n", team=OTHER)
    await _import(team, "Later", "email\nlate@example.com\n")
    everyone = await find_segment(team, TEAM, ALL_CUSTOMERS)
    assert everyone is not None
    out = io.StringIO()
    assert await write_export(team, TEAM, everyone.id or 0, out) == 4
    emails = [row[2] for row in list(csv.reader(io.StringIO(out.getvalue())))[1:]]
    async with team.begin() as conn:
        ours = (await conn.execute(text(
            "SELECT email FROM contact WHERE team_id = :t"), {"t": TEAM})).scalars()
        assert emails == sorted(ours, key=str.casefold) and "late@example.com" in emails
    assert not any("other.example" in e for e in emails)


@pytest.mark.parametrize("every_contact", [False, True])
async def test_an_export_reads_its_rows_in_order_without_sorting_them(
    db: Database, every_contact: bool
) -> None:
    """A static segment's members come in contact id order from their own key, All Customers'
    by address from the workspace's unique index (only its rows); ordered by contact.id
    through the join, or found through a name index, SQLite sorted every row in a temporary
    b-tree first (0.3 s a million), and All Customers by id read every workspace's rows."""
    if db.dialect != "sqlite":
        pytest.skip("SQLite's planner")
    from sqlalchemy.dialects import sqlite

    from bot.contacts import members_query

    query = members_query(TEAM, 2, every_contact=every_contact)
    sql = query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    async with db.begin() as conn:
        plan = " ".join(str(r[-1]) for r in await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "TEMP B-TREE" not in plan and "name_prefix" not in plan, plan
    assert re.search(r"^SCAN contact\b", plan) is None, plan  # no workspace reads the table
    if every_contact:
        assert re.search(r"SEARCH contact USING INDEX \w+ \(team_id=\?\)", plan), plan


async def test_a_rename_from_a_name_changed_meanwhile_is_refused(team: Database) -> None:
    """PostgreSQL: another rename holds the row (its UPDATE not committed) while this one reads
    the old name; it used to go through and record "was VIP" for a segment then named Gold."""
    if team.dialect != "postgresql":
        pytest.skip("SQLite's one writer can't interleave the two")
    vip = await import_target(team, TEAM, "VIP", create=True)
    other = await team.engine.connect()
    transaction = await other.begin()
    await other.execute(text("UPDATE segment SET name = 'Gold', name_key = 'gold' WHERE id = :s"),
                        {"s": vip.id})  # fmt: skip
    pid = await backend_pid(other)
    renaming = asyncio.create_task(rename_segment(team, TEAM, vip.id or 0, "Platinum"))
    await until_waiting_or_done(team, pid, renaming)
    await transaction.commit()
    await other.close()
    with pytest.raises(WorkspaceError, match="renamed to 'Gold' meanwhile"):
        await renaming
    assert (await find_segment(team, TEAM, "Gold")) is not None


async def test_an_import_into_a_segment_deleted_since_it_was_chosen_is_refused(
    team: Database,
) -> None:
    """The segment is chosen (import_target, or the Slack form's pick), then deleted before
    the import is created: the batch was created anyway, into a deleted segment whose
    memberships nobody sees. Now its creation checks the segment in its own transaction, for
    an import and for an uploaded file's review alike, and writes nothing."""
    db = team
    await _import(db, "VIP")
    chosen = await import_target(db, TEAM, "VIP", create=False)
    await delete_segment(db, TEAM, chosen.id or 0)
    written = "SELECT (SELECT COUNT(*) FROM import_batch) + (SELECT COUNT(*) FROM audit_entry)"
    before = await _count(db, written)
    gone = "The segment 'VIP' was deleted; nothing was imported."
    with pytest.raises(WorkspaceError, match=re.escape(gone)):
        await create_batch(db, TEAM, chosen.id or 0, "U0001")
    with pytest.raises(WorkspaceError, match=re.escape(gone)):
        await create_upload_batch(db, TEAM, chosen.id or 0, "U0001", file_id="F1",
                                  label="people.csv")  # fmt: skip
    assert await _count(db, written) == before  # no batch, no "import requested"
    assert await _count(db, "SELECT COUNT(*) FROM seen_key") == 0  # the file can be offered again


async def test_sqlite_an_import_created_while_another_process_deletes_its_segment_is_refused(
    team: Database,
) -> None:
    """SQLite: another process (a connection of its own here) holds the write lock, having
    marked VIP deleted, when the import is created. pysqlite begins a transaction at its first
    write, so the creation's segment check, read before its INSERT, saw VIP live; the INSERT
    then waited for the lock and went into the deleted segment. The check now comes after the
    INSERT, inside the write transaction."""
    import sqlite3
    from typing import Any

    from sqlalchemy import event

    from models.db import sqlite_file

    db = team
    path = sqlite_file(db.url) if db.dialect == "sqlite" else None
    if path is None:
        pytest.skip("SQLite's write lock (PostgreSQL: test_an_import_waits_for_a_deletion...)")
    vip = await import_target(db, TEAM, "VIP", create=True)
    other = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        await asyncio.to_thread(other.execute, "UPDATE segment SET kind = ? WHERE id = ?",
                                (SegmentKind.DELETED.value, vip.id))  # fmt: skip
        loop, inserting = asyncio.get_running_loop(), asyncio.Event()

        def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO IMPORT_BATCH"):
                loop.call_soon_threadsafe(inserting.set)

        event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            creating = asyncio.create_task(create_batch(db, TEAM, vip.id or 0, "U0001"))
            # the batch's INSERT goes out (before the fix, after the check had read VIP live)
            await asyncio.wait_for(inserting.wait(), 30)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        await asyncio.to_thread(other.execute, "COMMIT")
        with pytest.raises(WorkspaceError, match="The segment 'VIP' was deleted"):
            await creating
    finally:
        other.close()
    assert await _count(db, "SELECT COUNT(*) FROM import_batch") == 0


async def test_an_import_waits_for_a_deletion_under_way_and_is_refused(team: Database) -> None:
    """PostgreSQL: the deletion's transaction holds the segment (its UPDATE done, paused on a
    table this test locks) when the import is created: the batch's insert waited for it, then
    went into the deleted segment. Now the creation waits and sees the segment gone."""
    if team.dialect != "postgresql":
        pytest.skip("SQLite's one writer can't interleave the two")
    db = team
    vip = await import_target(db, TEAM, "VIP", create=True)
    deletion = await pause_segment_deletion(db, TEAM, vip.id or 0)
    creating = asyncio.create_task(create_batch(db, TEAM, vip.id or 0, "U0001"))
    await until_waiting_or_done(db, deletion.pid, creating)
    assert (await deletion.let_go()).name == "VIP"
    with pytest.raises(WorkspaceError, match="The segment 'VIP' was deleted"):
        await creating
    assert await _count(db, "SELECT COUNT(*) FROM import_batch") == 0


async def test_a_name_within_the_limit_whose_compared_form_is_not_is_refused_in_words(
    team: Database,
) -> None:
    """"ß" is compared as "ss": a 100-character name holding some took more than the 100
    characters its key's column holds, and PostgreSQL refused the insert, so Slack showed
    "Something went wrong" (SQLite stored it). Now the name is refused saying why."""
    from bot.campaigns.service import CampaignError

    name = "Großkunden Straße " + "ß" * 82
    assert len(name) == 100
    with pytest.raises(WorkspaceError, match="this one is 184, with letters such as ß"):
        await create_segment(team, TEAM, name)
    with pytest.raises(CampaignError, match="counted as they are compared"):
        await create_campaign(team, TEAM, name, store_url="https://shop.example")
    fits = "Großkunden " + "ß" * 44  # 55 characters, 99 compared
    assert (await create_segment(team, TEAM, fits)).name == fits
    assert (await create_campaign(team, TEAM, fits, store_url="https://shop.example")).name == fits


async def test_segment_sizes_read_only_the_workspaces_own_memberships(team: Database) -> None:
    """Home counts each segment's members: filtered by team_id alone (segment_member has no
    index on it), the count read every workspace's memberships, for every Home shown."""
    from sqlalchemy import event

    from tests.conftest import BACKEND

    db = team
    await _import(db, "VIP")
    await _import(db, "Other", team=OTHER)
    seen: list[str] = []

    def keep(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
    try:
        sizes = [(s.name, n) for s, n in await segment_sizes(db, TEAM)]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", keep)
    assert sizes == [("All Customers", 3), ("VIP", 3)]
    (counting,) = [s for s in seen if "FROM segment_member" in s]
    if BACKEND == "postgres":  # its planner scans a table this small whatever the indexes
        return
    vip = await find_segment(db, TEAM, "VIP")
    assert vip is not None
    async with db.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        cursor = await raw.execute(f"EXPLAIN QUERY PLAN {counting}",
                                   [vip.id, TEAM] if counting.count("?") == 2 else [TEAM])
        plan = " ".join(str(row[-1]) for row in await cursor.fetchall())
    assert "SEARCH segment_member USING PRIMARY KEY (segment_id=?)" in plan, plan


@pytest.mark.parametrize("state", list(CampaignState))
def test_when_a_campaign_enrolls_is_worded_once_for_segments_and_the_shell(
    state: CampaignState,
) -> None:
    """The delete confirmation (a segment a campaign excludes) and `campaign target` of a
    campaign that isn't live each kept their own words for when its contacts are enrolled,
    and a paused campaign's read "when it goes live" in one, "when it resumes" in the other:
    both say service.enrolled_when now."""
    from bot.campaigns.service import enrolled_when
    from bot.cli_campaigns import _target_waits_text
    from bot.segments import CampaignUse
    from models import Campaign, SegmentRole

    said = enrolled_when(state)
    assert said == {"live": "are enrolled now (and invited, if it sends invites)",
                    "draft": "will be enrolled when it goes live",
                    "paused": "will be enrolled when it resumes"}[state]  # fmt: skip
    use = CampaignUse("Spring", SegmentRole.EXCLUDE, state, 1)
    assert use.consequence().endswith(f"so those of them in a segment it targets {said}.")
    if state != CampaignState.LIVE:  # a live campaign's targeting enrolls at once
        spring = Campaign(team_id="T", name="Spring", name_key="spring", store_url="",
                          state=state)  # fmt: skip
        assert f"its contacts {said} (referral-bot" in _target_waits_text(spring, "VIP")


@pytest.mark.parametrize("blank", ["\u3164", "\u115f", "\uffa0", "\u2800"])
async def test_a_name_padded_with_a_blank_letter_is_the_same_name(team: Database,
                                                                  blank: str) -> None:
    """Hangul fillers and the blank Braille cell draw nothing, like the U+200E the key
    already ignores: "All Customers" + U+3164 was a second All Customers in every menu, and
    "VIP" + U+3164 a second VIP."""
    db = team
    vip = await create_segment(db, TEAM, "VIP")
    with pytest.raises(WorkspaceError, match="built in"):
        await create_segment(db, TEAM, "All Customers" + blank)
    with pytest.raises(WorkspaceError, match="already exists"):
        await create_segment(db, TEAM, "VIP" + blank)
    with pytest.raises(WorkspaceError, match="built in"):
        await rename_segment(db, TEAM, vip.id or 0, f"All{blank} Customers")


@pytest.mark.parametrize("blank", ["\u2800", "\u3164"])
async def test_a_blank_letter_between_words_is_the_space_it_shows(team: Database,
                                                                  blank: str) -> None:
    """"All⠀Customers" reads as All Customers: a blank letter dropped from the key made it
    "allcustomers", a second All Customers."""
    with pytest.raises(WorkspaceError, match="built in"):
        await create_segment(team, TEAM, f"All{blank}Customers")
