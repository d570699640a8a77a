"""`/referral leads` and `/referral audit` as people meet them, over the wire: the list for a
lead and for everyone else, adding through the people picker (users.info decides who may be
one), Remove with double clicks, TEAM_LEADS seeding once across restarts, and the audit log
of this workspace only, in words, escaped, paged with *Older*.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from bot.audit import Act, record
from bot.workspaces import create_segment, ensure_workspace
from handlers.audit_messages import PAGE
from handlers.ids import Action, BlockId
from models import Advocate, AuditEntry, Database, Enrollment, ImportBatch, Invite
from tests.fakes.slack_api import block_problems, find_element
from tests.handlers.conftest import LEAD, REP, Harness, running_app

TEAM = "T0001"
OTHER_TEAM = "T0002"
ADMIN = "U0003"


async def _done(app: Harness) -> None:
    """Let the listeners finish their post-ack work (no jobs here: quicker than `settle`)."""
    for _ in range(2):
        await app.later.drain()
        await asyncio.sleep(0.01)


async def _command(app: Harness, words: str, user: str = LEAD,
                   team: str = TEAM) -> dict[str, Any]:  # fmt: skip
    """Type `/referral <words>`; returns what the bot answered through the response_url."""
    url = app.slack.new_response_url("C0001", user_id=user)
    reply = await app.requests.slash_command(text=words, user_id=user, response_url=url,
                                             team_id=team)  # fmt: skip
    assert reply.status == 200 and not reply.body  # acked at once, answered after
    await _done(app)
    answer = app.slack.responses[url][-1]
    assert answer["response_type"] == "ephemeral"
    assert block_problems(answer.get("blocks") or []) == []
    return answer


async def _click(app: Harness, action: str, value: str | None, shown: dict[str, Any],
                 user: str = LEAD, *, state: dict[str, Any] | None = None,
                 team: str = TEAM) -> list[dict[str, Any]]:  # fmt: skip
    """Click in an ephemeral message; returns what was posted to that click's response_url."""
    url = app.slack.new_response_url("C0001", user_id=user)
    await app.requests.block_action(action, value, user_id=user, response_url=url,
                                     message={"blocks": shown["blocks"]}, state_values=state,
                                     team_id=team)  # fmt: skip
    await _done(app)
    return app.slack.responses[url]


def _picked(*users: str) -> dict[str, Any]:
    """The picker's state as Slack sends it with a click on *Add as team leads*."""
    chosen = {"type": "multi_users_select", "selected_users": list(users)}
    return {BlockId.LEADS_USERS: {Action.LEADS_USERS: chosen}}


def _all_text(message: dict[str, Any]) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks") or [])


def _removes(message: dict[str, Any]) -> list[str]:
    return [found[1]["value"] for b in message["blocks"]
            if (found := find_element([b], Action.LEADS_REMOVE))]  # fmt: skip


async def _leads_in_db(db: Database, team: str = TEAM) -> list[str]:
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT user_id FROM team_lead WHERE team_id = :t "
                                       "ORDER BY user_id"), {"t": team})  # fmt: skip
        return [str(r[0]) for r in rows]


async def _audit_rows(db: Database, team: str = TEAM) -> list[tuple[str, str, str]]:
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT actor, action, subject FROM audit_entry "
                                       "WHERE team_id = :t ORDER BY id"), {"t": team})  # fmt: skip
        return [(str(a), str(b), str(c)) for a, b, c in rows]


# ---- /referral leads --------------------------------------------------------------------------


async def test_a_lead_sees_the_list_with_remove_and_the_picker(app: Harness) -> None:
    shown = await _command(app, "leads")
    words = _all_text(shown)
    assert f"<@{LEAD}>" in words
    assert "Workspace admins and owners count as team leads too" in words
    assert _removes(shown) == [LEAD]
    remove = find_element(shown["blocks"], Action.LEADS_REMOVE)
    assert remove is not None and remove[1]["confirm"]["confirm"]["text"] == "Remove"
    picker = find_element(shown["blocks"], Action.LEADS_USERS)
    assert picker is not None and picker[0] == BlockId.LEADS_USERS
    assert picker[1]["type"] == "multi_users_select"
    assert find_element(shown["blocks"], Action.LEADS_ADD) is not None


async def test_everyone_else_sees_the_list_and_whom_to_ask(app: Harness) -> None:
    shown = await _command(app, "leads", user=REP)
    words = _all_text(shown)
    assert f"<@{LEAD}>" in words and "admins and owners count as team leads too" in words
    assert f"ask <@{LEAD}>" in words
    for action in (Action.LEADS_REMOVE, Action.LEADS_ADD, Action.LEADS_USERS):
        assert find_element(shown["blocks"], action) is None
    # an admin of this workspace isn't listed but may change the list
    app.slack.users[ADMIN] = {"is_admin": True}
    assert find_element((await _command(app, "leads", user=ADMIN))["blocks"],
                        Action.LEADS_ADD) is not None  # fmt: skip


async def test_adding_checks_each_person_with_slack(app: Harness) -> None:
    app.slack.users["U0OUT"] = {"team_id": "T0OTHER"}  # a shared channel's guest
    app.slack.users["U0GONE"] = {"deleted": True}
    app.slack.users["U0GUEST"] = {"is_restricted": True}
    shown = await _command(app, "leads")
    answers = await _click(app, Action.LEADS_ADD, None, shown,
                           state=_picked("U0005", "U0OUT", "U0GONE", "U0BOT", "U0GUEST"))
    refreshed = answers[-1]
    assert refreshed["replace_original"] is True
    words = _all_text(refreshed)
    assert f"<@{LEAD}> added <@U0005> to the team leads" in words
    assert "<@U0OUT> belongs to another workspace" in words
    assert "<@U0GONE> has been deactivated" in words
    assert "<@U0BOT> is a bot" in words
    assert "<@U0GUEST> is a guest" in words
    assert sorted(_removes(refreshed)) == [LEAD, "U0005"]  # the list is refreshed
    assert app.slack.block_errors == []
    assert await _leads_in_db(app.db) == ["U0002", "U0005"]
    assert await _audit_rows(app.db) == [(LEAD, Act.LEAD_ADDED, "<@U0005>")]
    users_asked = {c.args["user"] for c in app.slack.calls_to("users.info")}
    assert {"U0005", "U0OUT", "U0GONE", "U0BOT", "U0GUEST"} <= users_asked

    # a double click (or adding them again): told, nothing written twice
    again = (await _click(app, Action.LEADS_ADD, None, shown, state=_picked("U0005")))[-1]
    assert "<@U0005> was a team lead already" in _all_text(again)
    assert len(await _audit_rows(app.db)) == 1

    # nothing chosen: said so, and the list stays
    empty = (await _click(app, Action.LEADS_ADD, None, shown, state={}))[-1]
    assert "Choose people" in empty["text"] and empty.get("replace_original") is False

    # the new lead may change the list and see the audit log now
    assert find_element((await _command(app, "leads", user="U0005"))["blocks"],
                        Action.LEADS_ADD) is not None  # fmt: skip
    log = _all_text(await _command(app, "audit", user="U0005"))
    assert f"<@{LEAD}> added <@U0005> to the team leads" in log


async def test_remove_with_a_double_click_and_the_last_lead(app: Harness) -> None:
    app.slack.users[ADMIN] = {"is_admin": True}
    shown = await _command(app, "leads", user=ADMIN)
    first = (await _click(app, Action.LEADS_REMOVE, LEAD, shown, user=ADMIN))[-1]
    words = _all_text(first)
    assert f"<@{ADMIN}> removed <@{LEAD}> from the team leads" in words
    assert "No one is listed now: workspace admins and owners still count" in words
    assert first["replace_original"] is True and _removes(first) == []
    assert find_element(first["blocks"], Action.LEADS_ADD) is not None  # the admin still may
    second = (await _click(app, Action.LEADS_REMOVE, LEAD, shown, user=ADMIN))[-1]
    assert f"<@{LEAD}> wasn't a team lead any more" in _all_text(second)
    assert await _leads_in_db(app.db) == []
    assert await _audit_rows(app.db) == [(ADMIN, Act.LEAD_REMOVED, f"<@{LEAD}>")]
    # the former lead is now refused, and told whom to ask
    refused = (await _click(app, Action.LEADS_ADD, None, shown, user=LEAD,
                            state=_picked(LEAD)))[-1]  # fmt: skip
    assert "Only team leads can change the team leads" in refused["text"]
    assert await _leads_in_db(app.db) == []


async def test_a_member_of_another_organisation_is_not_shown_the_leads(app: Harness) -> None:
    """A shared channel's member of another organisation was listed this workspace's leads
    (an admin there too, not a lead here)."""
    app.slack.users["U0OUTADMIN"] = {"team_id": "T0OTHER", "is_admin": True, "is_owner": True}
    shown = await _command(app, "leads", user="U0OUTADMIN")
    assert shown["text"] == "Only members of this workspace can see its team leads."
    assert LEAD not in _all_text(shown)


async def test_non_leads_and_other_workspaces_change_nothing(app: Harness) -> None:
    app.slack.users["U0OUTADMIN"] = {"team_id": "T0OTHER", "is_admin": True, "is_owner": True}
    shown = await _command(app, "leads")
    # a member is told whom to ask; another organisation's member isn't told who they are
    for user, said in ((REP, f"Only team leads can change the team leads. Ask <@{LEAD}>."),
                       ("U0OUTADMIN", "Only members of this workspace can change the team "
                                      "leads.")):  # fmt: skip
        added = (await _click(app, Action.LEADS_ADD, None, shown, user=user,
                              state=_picked(user)))[-1]  # fmt: skip
        assert added["text"] == said
        removed = (await _click(app, Action.LEADS_REMOVE, LEAD, shown, user=user))[-1]
        assert removed["text"] == said
    assert await _leads_in_db(app.db) == [LEAD]
    # TEAM_LEADS seeds each workspace, but a seeded lead of another workspace (users.info
    # says T0001) is no lead there: refused, and taken off that workspace's list only
    await ensure_workspace(app.db, OTHER_TEAM)
    elsewhere = await _command(app, "leads", team=OTHER_TEAM)  # not even shown the list there
    assert elsewhere["text"] == "Only members of this workspace can see its team leads."
    assert not elsewhere.get("blocks")
    refused = (await _click(app, Action.LEADS_REMOVE, LEAD, shown, team=OTHER_TEAM))[-1]
    assert refused["text"] == "Only members of this workspace can change the team leads."
    assert await _leads_in_db(app.db, OTHER_TEAM) == []
    assert await _leads_in_db(app.db) == [LEAD]
    # a hand-made value is refused without a mention of it
    odd = (await _click(app, Action.LEADS_REMOVE, "<!channel>", shown))[-1]
    assert "<!channel>" not in _all_text(odd) and "doesn't name a person" in odd["text"]
    assert await _audit_rows(app.db) == []


async def test_team_leads_seed_once_and_a_removal_sticks(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with running_app(db, tmp_path, team_leads=[LEAD, "U0004"]) as app:
        shown = await _command(app, "leads")
        assert sorted(_removes(shown)) == [LEAD, "U0004"]
        await _click(app, Action.LEADS_REMOVE, "U0004", shown)
    # a restart with the same TEAM_LEADS (a new app, new Deps): the removal stays
    async with running_app(db, tmp_path, team_leads=[LEAD, "U0004"]) as app:
        assert _removes(await _command(app, "leads")) == [LEAD]
    # a later TEAM_LEADS change doesn't touch a workspace seeded already
    async with running_app(db, tmp_path, team_leads=["U0006"]) as app:
        assert _removes(await _command(app, "leads")) == [LEAD]
        assert await _leads_in_db(db) == [LEAD]


# ---- /referral audit --------------------------------------------------------------------------


async def _entry(db: Database, team: str, actor: str, action: str, subject: str = "",
                 detail: str = "", at: datetime | None = None) -> None:  # fmt: skip
    async with db.begin() as conn:
        await conn.execute(insert(AuditEntry).values(
            team_id=team, actor=actor, action=action, subject=subject, detail=detail,
            at=at or datetime.now(UTC)))  # fmt: skip


async def test_the_audit_log_in_words_for_this_workspace_only(app: Harness) -> None:
    await ensure_workspace(app.db, TEAM)
    segment = await create_segment(app.db, TEAM, "VIP")
    async with app.db.begin() as conn:  # what an import, its enrollment and invites leave
        batch_id = (await conn.execute(insert(ImportBatch).values(
            team_id=TEAM, segment_id=segment.id, requested_by=REP, approved_by=LEAD,
            status="done", valid=1204, new_contacts=1180, added_to_segment=1204,
            created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
        ).returning(ImportBatch.id))).scalar_one()  # fmt: skip
        enrollment = (await conn.execute(insert(Enrollment).values(
            team_id=TEAM, campaign_id=1, batch_id=batch_id, status="done", enrolled=3,
            created_at=datetime.now(UTC)).returning(Enrollment.id))).scalar_one()  # fmt: skip
        for n, state in enumerate(("sent", "sent", "queued")):
            advocate = (await conn.execute(insert(Advocate).values(
                team_id=TEAM, campaign_id=1, contact_id=n, code=f"code-{n}",
                enrollment_id=enrollment, created_at=datetime.now(UTC)).returning(Advocate.id)
            )).scalar_one()  # fmt: skip
            await conn.execute(insert(Invite).values(
                team_id=TEAM, campaign_id=1, contact_id=n, advocate_id=advocate,
                enrollment_id=enrollment, state=state, updated_at=datetime.now(UTC)))  # fmt: skip
    subject = f"import #{batch_id}"
    await record(app.db, TEAM, REP, Act.IMPORT_REQUESTED, subject, "into <!channel> VIP")
    await record(app.db, TEAM, LEAD, Act.IMPORT_APPROVED, subject, "1204 contacts to import")
    await record(app.db, TEAM, "cli", Act.MAILCHIMP_DISCONNECTED, "Mailchimp")
    await _entry(app.db, TEAM, LEAD, "campaign.archived", "Spring <@U0666>", "by hand & <b>")
    await record(app.db, TEAM, REP, Act.SEGMENT_CREATED, "<@U0BOSS01>")  # a name, typed
    await record(app.db, OTHER_TEAM, LEAD, Act.IMPORT_APPROVED, "import #999", "SECRET-OTHER")

    shown = await _command(app, "audit")
    words = _all_text(shown)
    assert f"<@{LEAD}> approved {subject} (1,204 contacts to import)" in words
    assert f"<@{REP}> asked for {subject} (into &lt;!channel&gt; VIP)" in words
    assert "imported: 1,180 new contacts, 1,204 added to the segment" in words
    assert "3 enrolled in campaigns, 2 invites sent (1 waiting)" in words
    assert "The command line disconnected Mailchimp" in words
    assert "did campaign.archived on Spring &lt;@U0666&gt; (by hand &amp; &lt;b&gt;)" in words
    assert "<!channel>" not in words and "<@U0666>" not in words
    assert "<@U0BOSS01>" not in words and "&lt;@U0BOSS01&gt;" in words  # never a mention
    assert "<!date^" in words
    assert "SECRET-OTHER" not in words and "#999" not in words
    assert find_element(shown["blocks"], Action.AUDIT_MORE) is None  # one page only
    # newest first
    assert words.index("campaign.archived") < words.index("approved") < words.index("asked for")

    # a filter: one import's entries
    one = _all_text(await _command(app, f"audit import #{batch_id}"))
    assert "approved" in one and "asked for" in one and "Mailchimp" not in one
    assert "Mailchimp" in _all_text(await _command(app, "audit mailchimp"))
    assert "Nothing" not in _all_text(await _command(app, f"audit {REP}"))
    assert "No entries match" in _all_text(await _command(app, "audit SECRET-OTHER"))


async def test_older_pages_back_without_gaps_or_repeats(app: Harness) -> None:
    total = PAGE * 2 + 5
    for n in range(1, total + 1):
        await _entry(app.db, TEAM, LEAD, Act.SEGMENT_CREATED, f"Segment {n:03d}")
        if n % 10 == 0:
            await _entry(app.db, OTHER_TEAM, LEAD, Act.SEGMENT_CREATED, f"Theirs {n:03d}")

    def names(message: dict[str, Any]) -> list[int]:
        found = []
        for block in message["blocks"]:
            body = (block.get("text") or {}).get("text", "")
            found += [int(part.split()[0]) for part in body.split("Segment ")[1:]]
        assert "Theirs" not in _all_text(message)
        return found

    page = await _command(app, "audit")
    seen = names(page)
    assert seen == list(range(total, total - PAGE, -1))
    while (more := find_element(page["blocks"], Action.AUDIT_MORE)) is not None:
        page = (await _click(app, Action.AUDIT_MORE, more[1]["value"], page))[-1]
        assert page["replace_original"] is True and "older entries" in _all_text(page)
        assert block_problems(page["blocks"]) == []
        seen += names(page)
    assert seen == list(range(total, 0, -1))
    assert app.slack.block_errors == []


async def test_the_audit_log_is_for_leads_and_stays_within_slack_limits(app: Harness) -> None:
    for _ in range(PAGE + 3):
        await record(app.db, TEAM, LEAD, Act.IMPORT_SOURCE_REMOVED, "import #1",
                     "removed <!channel>" + "x" * 5000)  # fmt: skip
    refused = await _command(app, "audit", user=REP)
    assert refused["text"] == f"Only team leads can see the audit log. Ask <@{LEAD}>."
    assert "removed" not in _all_text(refused)
    shown = await _command(app, "audit")
    assert len(shown["blocks"]) <= 50
    assert all(len((b.get("text") or {}).get("text", "")) <= 3000 for b in shown["blocks"])
    assert "<!channel>" not in _all_text(shown) and "&lt;!channel&gt;" in _all_text(shown)
    more = find_element(shown["blocks"], Action.AUDIT_MORE)
    assert more is not None
    # Older clicked by someone who isn't a lead (a forged or forwarded click): refused
    by_rep = (await _click(app, Action.AUDIT_MORE, more[1]["value"], shown, user=REP))[-1]
    assert "Only team leads can see the audit log" in by_rep["text"]
    assert "removed" not in _all_text(by_rep)
    assert app.slack.block_errors == []


async def _enrolled_by_the_import(app: Harness) -> str:
    """An import of two contacts into VIP, which the live campaign Spring targets before the
    import is approved: the enrollment of its new contacts carries its batch id. Its id."""
    from bot.campaigns import service
    from bot.workspaces import find_segment
    from tests.handlers.test_decisions import _start
    from tests.handlers.test_targeting import _campaign, _hold_is_over

    message, batch = await _start(app, consent=True)
    spring = await _campaign(app, "Spring", live=True)
    vip = await find_segment(app.db, TEAM, "VIP")
    assert vip is not None
    await service.target(app.db, TEAM, spring.id or 0, vip.id or 0, requested_by=LEAD)
    await app.settle()
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    await _hold_is_over(app)
    return str(batch)


async def test_an_imports_outcome_is_counted_from_the_rows_after_a_contact_is_deleted(
    app: Harness,
) -> None:
    """A lead deleted one of an import's two contacts (its advocate and invite went with it):
    Home said 1 enrolled, 1 invite sent, the audit log kept saying 2 and 2 (the enrollment's
    count at the time)."""
    from bot.contact_admin import delete_contact, find_by_email
    from tests.handlers.test_home import _open_home

    batch = await _enrolled_by_the_import(app)
    assert "2 enrolled in campaigns, 2 invites sent" in _all_text(await _command(app, "audit"))
    async with app.db.begin() as conn:
        email = (await conn.execute(text("SELECT email FROM contact ORDER BY id"))).scalar()
    await delete_contact(app.db, TEAM, await find_by_email(app.db, TEAM, email), LEAD)
    home = json.dumps((await _open_home(app, LEAD))["blocks"])
    assert "1 enrolled as advocate, 1 invite sent" in home, home
    words = _all_text(await _command(app, f"audit import #{batch}"))
    assert "1 enrolled in campaigns, 1 invite sent" in words, words


async def test_an_imports_outcome_counts_the_campaign_targeted_from_its_thread(
    app: Harness,
) -> None:
    """*Target a campaign* in an import's thread enrolled its two contacts: Home said so,
    the audit log said nothing about them (it looked only at enrollments run for the
    import's new contacts)."""
    from tests.handlers.test_home import _open_home
    from tests.handlers.test_targeting import _hold_is_over, _targeted

    await _targeted(app)
    await _hold_is_over(app)
    home = json.dumps((await _open_home(app, LEAD))["blocks"])
    assert "2 enrolled as advocates, 2 invites sent" in home, home
    words = _all_text(await _command(app, "audit"))
    assert "approved import #1" in words
    assert "2 enrolled in campaigns, 2 invites sent" in words, words


async def test_imports_from_the_shell_are_recorded_as_approved_with_their_outcome(
    app: Harness, tmp_path: Path
) -> None:
    """`referral-bot import` (and `import --background`) approved the import without an
    audit entry: the log showed only "asked for", with no line saying what it imported."""
    import io

    from bot.audit import recent
    from bot.imports.background import enqueue_file_import, import_handler
    from bot.imports.batches import queue_batch
    from bot.imports.importer import import_files
    from bot.imports.job_kinds import IMPORT_JOB
    from bot.jobs.worker import Worker, WorkerConfig

    await ensure_workspace(app.db, TEAM)
    people = "email\n" + "".join(f"p{i}@example.com\n" for i in range(3))
    await import_files(app.db, TEAM, [("people.csv", io.BytesIO(people.encode()))],
                       segment="VIP", create_segment=True)  # fmt: skip
    more = tmp_path / "more.csv"
    more.write_text("email\n" + "".join(f"q{i}@example.com\n" for i in range(2)))
    await enqueue_file_import(app.db, TEAM, [more], segment="VIP")
    config = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0)
    await Worker(app.db, {IMPORT_JOB: import_handler(2)}, config).run_until_idle()
    await queue_batch(app.db, TEAM, 2, "cli")  # already approved: no second entry
    approvals = [(e.actor, e.subject, e.detail) for e in await recent(app.db, TEAM)
                 if e.action == Act.IMPORT_APPROVED]  # fmt: skip
    assert approvals == [("cli", "import #2", "2 contacts to import"),
                         ("cli", "import #1", "3 contacts to import")]  # fmt: skip
    words = _all_text(await _command(app, "audit"))
    assert "The command line approved import #1 (3 contacts to import)" in words, words
    assert "imported: 3 new contacts, 3 added to the segment" in words, words
    assert "imported: 2 new contacts, 2 added to the segment" in words, words


async def test_adding_or_removing_a_lead_republishes_their_open_home(app: Harness) -> None:
    """Home's buttons follow the person's role, but a change of the leads list republished
    nobody's Home: a removed lead's open Home kept *New campaign* and *Connect Mailchimp*
    (each refused when clicked), and a new lead's lacked them until reopened."""
    from tests.handlers.test_home import _open_home

    lead_only = (Action.CAMPAIGN_CREATE, Action.MAILCHIMP_CONNECT)

    def lead_buttons(user: str) -> list[str]:
        shown = json.dumps(app.slack.home_views[user]["blocks"])
        return [a for a in lead_only if a in shown]

    await _open_home(app, REP)
    assert lead_buttons(REP) == []
    shown = await _command(app, "leads", user=LEAD)
    await _click(app, Action.LEADS_ADD, None, shown, user=LEAD, state=_picked(REP))
    await app.settle()
    assert lead_buttons(REP) == list(lead_only)
    await _open_home(app, LEAD)
    app.slack.users[ADMIN] = {"is_admin": True}
    shown = await _command(app, "leads", user=ADMIN)
    await _click(app, Action.LEADS_REMOVE, LEAD, shown, user=ADMIN)
    await app.settle()
    assert lead_buttons(LEAD) == []


async def test_the_leads_list_answers_before_home_is_republished(app: Harness) -> None:
    """Adding or removing a lead republished every open Home (a views.publish each, at most
    50 of them) before the list answered: the person who clicked waited on Slack for all of
    them. The segment list and a contact's card answer first; so does this list now."""
    from tests.handlers.test_home import _open_home

    await _open_home(app, REP)
    await _open_home(app, LEAD)
    for action, value, state, said in (
        (Action.LEADS_ADD, None, _picked(REP), f"added <@{REP}> to the team leads"),
        (Action.LEADS_REMOVE, REP, None, f"removed <@{REP}> from the team leads"),
    ):
        shown = await _command(app, "leads")
        before = len(app.slack.calls_to("views.publish"))
        gate = app.slack.hold("views.publish")  # Slack answers the republishes slowly
        url = app.slack.new_response_url("C0001", user_id=LEAD)
        await app.requests.block_action(action, value, user_id=LEAD, response_url=url,
                                         message={"blocks": shown["blocks"]},
                                         state_values=state)  # fmt: skip
        try:
            await app.slack.wait_for("views.publish", before + 1)  # a Home is on its way
            answered = app.slack.responses[url]
            assert answered and said in _all_text(answered[-1]), answered  # before it lands
        finally:
            app.slack.unhold("views.publish")
            gate.set()
        await app.settle()
        assert len(app.slack.calls_to("views.publish")) >= before + 2  # both Homes, after


async def test_a_lead_added_from_a_list_too_old_to_redraw_is_told_by_dm(app: Harness) -> None:
    """The list's response_url lasts 30 minutes and 5 uses: *Add as team leads* from an older
    list added the lead, then said "may not have gone through. Try again"."""
    shown = await _command(app, "leads")
    await app.requests.block_action(Action.LEADS_ADD, None, user_id=LEAD,
                                    response_url=f"{app.slack.base_url}/response/expired",
                                    message={"blocks": shown["blocks"]},
                                    state_values=_picked("U0005"))  # fmt: skip
    await _done(app)
    assert "U0005" in await _leads_in_db(app.db)
    dms = [m["text"] for m in app.slack.messages if m["channel"].startswith("D")]
    assert len(dms) == 1 and f"<@{LEAD}> added <@U0005> to the team leads" in dms[0], dms
    assert "`/referral leads`" in dms[0], dms
