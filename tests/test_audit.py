"""The audit log and team-lead services, on the database: paging, filters, words for every act
(and for acts this version doesn't know), import outcomes per workspace, and lead changes that
race."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, text

from bot import leads as lead_service
from bot.audit import Act, Entry, detail_words, import_outcomes, recent, record, sentence, words
from bot.leads import LeadsError, add_lead, add_leads, lead_ids, remove_lead
from bot.workspaces import create_segment, ensure_workspace
from handlers.audit_messages import audit_message, entry_line
from handlers.leads_messages import leads_message
from models import Advocate, AuditEntry, Database, Enrollment, ImportBatch, Invite
from tests.fakes.slack_api import block_problems
from tests.waiting import backend_pid, until_waiting_or_done

TEAM = "T0001"
OTHER = "T0002"


async def _count(db: Database, sql: str, **params: object) -> int:
    async with db.begin() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


def test_every_act_reads_as_words_and_unknown_ones_still_show() -> None:
    for act in Act:
        said = words(act, "SUBJ")
        assert "SUBJ" in said and "{" not in said and not said.startswith("did "), act
    assert words("campaign.archived", "Spring") == "did campaign.archived on Spring"
    assert words("campaign.archived", "") == "did campaign.archived"
    assert words(Act.MAILCHIMP_DISCONNECTED, "Mailchimp") == "disconnected Mailchimp"
    assert detail_words(Act.IMPORT_APPROVED, "1204 contacts to import") == (
        "1,204 contacts to import")  # fmt: skip
    assert detail_words(Act.IMPORT_CONTACT_REMOVED, "removed 2024 x@y.com") == (
        "removed 2024 x@y.com")  # only a leading count is touched  # fmt: skip
    assert detail_words(Act.IMPORT_CONSENT, "confirmed they agreed") == ""  # the words say it
    entry = Entry(1, datetime.now(UTC), "U0002", Act.IMPORT_APPROVED, "import #12",
                  "1204 contacts to import")  # fmt: skip
    assert sentence(entry) == "approved import #12 (1,204 contacts to import)"


def test_the_messages_stay_within_slack_limits_for_every_act() -> None:
    now = datetime.now(UTC)
    acts = [*Act, "something.new", "<!channel>"]
    entries = [Entry(i, now, "<!here>" if i % 2 else "U0002", str(acts[i % len(acts)]),
                     "<!channel> " + "s" * 300, "<@U0666> & " + "d" * 4000)
               for i in range(20, 0, -1)]  # fmt: skip
    _, blocks = audit_message(entries, {}, has_more=True, matching="<!everyone> " * 20)
    rendered = [b.to_dict() for b in blocks]
    assert block_problems(rendered) == [] and len(rendered) <= 50
    flat = str([b for b in rendered if b["type"] != "actions"])  # a button's value isn't shown
    assert "<!channel>" not in flat and "<!here>" not in flat and "<@U0666>" not in flat
    assert "<!everyone>" not in flat
    line = entry_line(Entry(1, now, "cli", Act.LEAD_ADDED, "<@U0005>", ""), {})
    assert "The command line added <@U0005> to the team leads" in line  # our stored mention

    many = [lead_service.Lead(f"U{i:06d}", "seed", now) for i in range(100)]
    for can_edit in (True, False):
        _, blocks = leads_message(many, can_edit=can_edit, note="x" * 5000)
        assert block_problems([b.to_dict() for b in blocks]) == []


async def test_recent_pages_by_id_filters_and_keeps_to_its_workspace(db: Database) -> None:
    for n in range(1, 8):
        await record(db, TEAM, "U0001" if n % 2 else "U0002", Act.IMPORT_REQUESTED,
                     f"import #{n}", f"into 50%_off {n}")  # fmt: skip
        await record(db, OTHER, "U0001", Act.IMPORT_REQUESTED, f"import #{n}", "theirs")
    first = await recent(db, TEAM, limit=3)
    assert [e.subject for e in first] == ["import #7", "import #6", "import #5"]
    rest = await recent(db, TEAM, limit=10, before_id=first[-1].id)
    assert [e.subject for e in rest] == [f"import #{n}" for n in (4, 3, 2, 1)]
    assert all(e.detail != "theirs" for e in first + rest)

    assert [e.subject for e in await recent(db, TEAM, matching="import #1")] == ["import #1"]
    assert [e.subject for e in await recent(db, TEAM, matching="#2")] == ["import #2"]
    assert {e.actor for e in await recent(db, TEAM, matching="u0002")} == {"U0002"}
    assert {e.actor for e in await recent(db, TEAM, matching="<@U0001|rep>")} == {"U0001"}
    assert len(await recent(db, TEAM, matching="50%_OFF")) == 7  # wildcards taken literally
    assert await recent(db, TEAM, matching="5%") == []
    assert len(await recent(db, TEAM, matching="REQUESTED")) == 7
    assert await recent(db, TEAM, matching="theirs") == []
    await record(db, TEAM, "U0003", Act.CONTACT_UNSUBSCRIBED, "ana@example.com", "Unsubscribed")
    assert len(await recent(db, TEAM, matching="unsubscribed")) == 1  # a word, not a user id
    assert await recent(db, TEAM, since=datetime(2100, 1, 1, tzinfo=UTC)) == []


async def test_import_outcomes_count_rows_of_this_workspace_only(db: Database) -> None:
    now = datetime.now(UTC)
    ids = {}
    for team in (TEAM, OTHER):
        await ensure_workspace(db, team)
        segment = await create_segment(db, team, "VIP")
        async with db.begin() as conn:
            ids[team] = (await conn.execute(insert(ImportBatch).values(
                team_id=team, segment_id=segment.id, requested_by="U1", status="done",
                new_contacts=5, added_to_segment=7, created_at=now, updated_at=now,
            ).returning(ImportBatch.id))).scalar_one()  # fmt: skip
            for campaign in (1, 2):
                enrollment = (await conn.execute(insert(Enrollment).values(
                    team_id=team, campaign_id=campaign, batch_id=ids[team], enrolled=4,
                    created_at=now).returning(Enrollment.id))).scalar_one()  # fmt: skip
                for n, state in enumerate(("sent", "held", "failed", "not_emailed")):
                    contact = len(ids) * 10 + n
                    advocate = (await conn.execute(insert(Advocate).values(
                        team_id=team, campaign_id=campaign, contact_id=contact,
                        code=f"{team}-{campaign}-{n}", enrollment_id=enrollment,
                        batch_id=ids[team], created_at=now).returning(Advocate.id)
                    )).scalar_one()  # fmt: skip
                    await conn.execute(insert(Invite).values(
                        team_id=team, campaign_id=campaign, contact_id=contact,
                        advocate_id=advocate,
                        enrollment_id=enrollment, state=state, updated_at=now))  # fmt: skip
    mine = await import_outcomes(db, TEAM, [ids[TEAM], ids[OTHER], 999])
    assert set(mine) == {ids[TEAM]}  # another workspace's import is not found
    outcome = mine[ids[TEAM]]
    assert (outcome.status, outcome.new_contacts, outcome.added_to_segment) == ("done", 5, 7)
    assert (outcome.enrolled, outcome.invites_sent, outcome.invites_waiting) == (8, 2, 2)
    assert await import_outcomes(db, TEAM, []) == {}


async def test_concurrent_adds_and_removes_of_one_person_happen_once(db: Database) -> None:
    seed = ["U0002"]
    await ensure_workspace(db, TEAM)  # (creating a workspace isn't what races here)
    added = await asyncio.gather(*(add_lead(db, TEAM, "U0005", by=f"U000{i}", seed=seed)
                                   for i in range(1, 5)))  # fmt: skip
    assert sorted(added) == [False, False, False, True]
    removed = await asyncio.gather(*(remove_lead(db, TEAM, "U0005", by="U0002", seed=seed)
                                     for _ in range(4)))  # fmt: skip
    assert sorted(removed) == [False, False, False, True]
    assert await _count(db, "SELECT COUNT(*) FROM audit_entry WHERE action = 'lead.added'") == 1
    assert await _count(db, "SELECT COUNT(*) FROM audit_entry "
                            "WHERE action = 'lead.removed'") == 1  # fmt: skip
    assert await lead_ids(db, TEAM, seed) == ["U0002"]


async def test_seeding_happens_once_per_workspace(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    seeds = await asyncio.gather(*(lead_ids(db, TEAM, ["U0002", "U0003", "U0002"])
                                   for _ in range(4)))  # fmt: skip
    assert all(sorted(s) == ["U0002", "U0003"] for s in seeds)
    assert await remove_lead(db, TEAM, "U0003", by="cli", seed=["U0002", "U0003"])
    assert await lead_ids(db, TEAM, ["U0002", "U0003", "U0004"]) == ["U0002"]
    assert await lead_ids(db, OTHER, ["U0004"]) == ["U0004"]  # another workspace: its own
    assert await _count(db, "SELECT COUNT(*) FROM audit_entry") == 1  # seeding isn't an act


async def test_add_leads_refuses_bad_ids_too_many_and_over_the_limit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(LeadsError, match="isn't a Slack user id"):
        await add_leads(db, TEAM, ["U0005", "<!channel>"], by="cli")
    with pytest.raises(LeadsError, match="at most 10"):
        await add_leads(db, TEAM, [f"U{i:05d}" for i in range(11)], by="cli")
    monkeypatch.setattr(lead_service, "MAX_LEADS", 3)
    await add_leads(db, TEAM, ["U0001", "U0002"], by="cli")
    with pytest.raises(LeadsError, match="at most 3 team leads"):
        await add_leads(db, TEAM, ["U0003", "U0004"], by="cli")
    assert await lead_ids(db, TEAM) == ["U0001", "U0002"]  # all or nothing
    assert await _count(db, "SELECT COUNT(*) FROM audit_entry") == 2


async def test_two_additions_at_once_stay_within_the_limit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: another addition under way (not committed yet) is waited for and counted;
    each used to count only what was committed and both went through, past the limit."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite's one writer orders them already")
    monkeypatch.setattr(lead_service, "MAX_LEADS", 3)
    await add_leads(db, TEAM, ["U0001", "U0002"], by="cli")
    other = await db.engine.connect()
    transaction = await other.begin()
    await other.execute(text("SELECT 1 FROM workspace WHERE team_id = :t FOR UPDATE"),
                        {"t": TEAM})  # fmt: skip
    await other.execute(text("INSERT INTO team_lead (team_id, user_id, added_by, added_at) "
                             "VALUES (:t, 'U0003', 'cli', CURRENT_TIMESTAMP)"), {"t": TEAM})
    adding = asyncio.create_task(add_leads(db, TEAM, ["U0004"], by="cli"))
    await until_waiting_or_done(db, await backend_pid(other), adding)
    await transaction.commit()
    await other.close()
    with pytest.raises(LeadsError, match="at most 3 team leads"):
        await adding
    assert await lead_ids(db, TEAM) == ["U0001", "U0002", "U0003"]


async def test_entries_written_with_a_change_roll_back_with_it(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await conn.execute(insert(AuditEntry).values(
                team_id=TEAM, at=datetime.now(UTC), actor="U1", action="x", subject="",
                detail=""))  # fmt: skip
            raise RuntimeError("the change failed")
    assert await recent(db, TEAM) == []


async def test_a_word_the_log_shows_finds_its_entries(db: Database) -> None:
    """The log reads "<@U2> undid import #7", "asked for import #8", "edited import #8
    (removed vip.csv)"; `/referral audit undid` (its hint: "Narrow it down with ... a word")
    answered "No entries match", and a year (a segment "Sale 2025") was taken for import
    #2025 only."""
    await record(db, TEAM, "U0002", Act.IMPORT_UNDONE, "import #7", "done: 3 removed from VIP")
    await record(db, TEAM, "U0002", Act.IMPORT_REQUESTED, "import #8", "into Sale 2025")
    await record(db, TEAM, "U0002", Act.IMPORT_SOURCE_REMOVED, "import #8", "removed vip.csv")
    shown = [entry_line(e, {}) for e in await recent(db, TEAM)]
    assert "undid import #7" in shown[2] and "asked for import #8" in shown[1]
    assert "edited import #8" in shown[0]
    assert [e.subject for e in await recent(db, TEAM, matching="undid")] == ["import #7"]
    assert [e.subject for e in await recent(db, TEAM, matching="asked for")] == ["import #8"]
    assert len(await recent(db, TEAM, matching="edited")) == 1
    assert len(await recent(db, TEAM, matching="2025")) == 1
    assert len(await recent(db, TEAM, matching="8")) == 2  # import #8, still
    assert len(await recent(db, TEAM, matching="#8")) == 2


async def test_the_words_around_an_acts_subject_find_it(db: Database) -> None:
    """ "removed {subject} from a segment" left two spaces where the subject was: "removed
    from a segment" found nothing."""
    await record(db, TEAM, "U0002", Act.CONTACT_REMOVED_FROM_SEGMENT, "ada@example.com", "VIP")
    await record(db, TEAM, "U0002", Act.LEAD_ADDED, "<@U0003>", "")
    assert len(await recent(db, TEAM, matching="removed from a segment")) == 1
    assert len(await recent(db, TEAM, matching="added to the team leads")) == 1


async def test_a_bare_import_number_finds_that_import_not_every_number_holding_it(
    db: Database,
) -> None:
    """`/referral audit 12` found import #12 only; then also #120 and every "1204 contacts"."""
    await record(db, TEAM, "U0002", Act.IMPORT_APPROVED, "import #12", "30 contacts to import")
    await record(db, TEAM, "U0002", Act.IMPORT_APPROVED, "import #120", "5 contacts to import")
    await record(db, TEAM, "U0002", Act.IMPORT_APPROVED, "import #7", "1204 contacts to import")
    assert [e.subject for e in await recent(db, TEAM, matching="12")] == ["import #12"]
