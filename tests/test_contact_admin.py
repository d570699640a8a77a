"""Contact search and changes, as the service does them against a real database: prefix
search through the indexes (the plan is checked), one workspace's contacts only, and each
change in one transaction with its audit entry."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.audit import Act
from bot.campaigns.invites import Links, send_invites
from bot.contact_admin import (
    GONE,
    ContactError,
    RemovedFrom,
    card,
    delete_contact,
    find_by_email,
    remove_from_segment,
    resubscribe,
    search,
    search_params,
    search_sql,
    unsubscribe,
)
from bot.email.send import OutboxDirSender, SendResult
from bot.imports.importer import import_files
from bot.workspaces import ensure_workspace
from models import Database
from tests.campaigns.conftest import SECRET, TEAM, World, people

OTHER = "T0002"


@pytest.fixture
async def world(db: Database) -> World:
    await ensure_workspace(db, TEAM)
    return World(db)


async def _id(world: World, email: str, team: str = TEAM) -> int:
    return await find_by_email(world.db, team, email)


async def _audit(world: World) -> list[tuple[Any, ...]]:
    return await world.rows("SELECT actor, action, subject FROM audit_entry "
                            "WHERE action LIKE 'contact.%' ORDER BY id")  # fmt: skip


async def test_search_matches_email_first_and_last_name_prefixes_ignoring_case(
    world: World,
) -> None:
    await world.import_csv("VIP", people(
        "Ada@example.com,Ada,Lovelace", "bob@example.com,Bob,Adams", "carl@example.org,Carla,Smith",
        header="email,first_name,last_name"))  # fmt: skip
    emails = [h.email for h in (await search(world.db, TEAM, "  ADA ")).hits]
    assert emails == ["Ada@example.com", "bob@example.com"]  # Ada's email and name, Bob's Adams
    assert [h.email for h in (await search(world.db, TEAM, "LOVE")).hits] == ["Ada@example.com"]
    assert [h.email for h in (await search(world.db, TEAM, "ada love")).hits] == [
        "Ada@example.com"]  # fmt: skip
    assert [h.email for h in (await search(world.db, TEAM, "carl@EX")).hits] == [
        "carl@example.org"]  # fmt: skip
    assert (await search(world.db, TEAM, "example")).hits == []  # a prefix, not a substring
    assert (await search(world.db, TEAM, "   ")).hits == []
    hit = (await search(world.db, TEAM, "bob")).hits[0]
    assert (hit.first_name, hit.last_name, hit.segments, hit.subscribed) == (
        "Bob", "Adams", ("VIP",), True)  # fmt: skip


async def test_a_full_name_is_found_whichever_word_the_first_name_ends_at(world: World) -> None:
    await world.import_csv("VIP", people(
        "mary@example.com,Mary Ann,Smith", "ada@example.com,Ada,Lovelace",
        "jan@example.com,Jan,van der Berg", header="email,first_name,last_name"))  # fmt: skip

    async def emails(query: str) -> list[str]:
        return [h.email for h in (await search(world.db, TEAM, query)).hits]

    assert await emails("Mary Ann Smith") == ["mary@example.com"]
    assert await emails("mary ann smi") == ["mary@example.com"]
    assert await emails("Jan van der Berg") == ["jan@example.com"]
    assert await emails("Ada Lovelace") == ["ada@example.com"]
    assert await emails("Mary Smith") == ["mary@example.com"]  # a prefix of "Mary Ann"
    assert await emails("Ann Smith") == []  # first names are matched from their start


async def test_a_turkish_dotted_capital_i_is_found_however_it_is_typed(world: World) -> None:
    """Python lowers "İ" to "i" + a combining dot and SQLite's lower() keeps it: "İbrahim"
    was found by no query at all on SQLite, not even typed as stored."""
    await world.import_csv("VIP", people("ib@example.com,İbrahim,Yılmaz", "ip@example.com,Ipek,Ak",
                                         header="email,first_name,last_name"))  # fmt: skip
    for query in ("İbrahim", "İBRAHİM", "İbra"):
        assert [h.email for h in (await search(world.db, TEAM, query)).hits] == [
            "ib@example.com"], query  # fmt: skip
    assert [h.email for h in (await search(world.db, TEAM, "ipek")).hits] == ["ip@example.com"]


async def test_an_all_caps_name_with_several_is_and_accents_is_found_as_typed(
    world: World,
) -> None:
    await world.import_csv("VIP", people("iv@example.com,Ana,IVANIŠEVIĆ",
                                         header="email,first_name,last_name"))  # fmt: skip
    for query in ("IVANIŠEVIĆ", "Ivanišević", "ivaniš"):
        assert [h.email for h in (await search(world.db, TEAM, query)).hits] == [
            "iv@example.com"], query  # fmt: skip


async def test_a_name_a_mac_wrote_decomposed_is_found_as_typed_anywhere(world: World) -> None:
    await world.import_csv("VIP", people("em@example.com,E\u0301mile,", "el@example.com,Élodie,",
                                         header="email,first_name,last_name"))  # fmt: skip
    for query, found in (("\u00e9mile", ["em@example.com"]), ("ÉMI", ["em@example.com"]),
                         ("e\u0301lo", ["el@example.com"])):  # fmt: skip
        assert [h.email for h in (await search(world.db, TEAM, query)).hits] == found, query


async def test_search_pages_in_email_order(world: World) -> None:
    await world.import_csv("VIP", people(*[f"p{i:02d}@example.com,P{i}" for i in range(25)]))
    first = await search(world.db, TEAM, "p")
    assert [h.email for h in first.hits] == [f"p{i:02d}@example.com" for i in range(10)]
    assert first.more
    last = await search(world.db, TEAM, "p", offset=20)
    assert [h.email for h in last.hits] == [f"p{i:02d}@example.com" for i in range(20, 25)]
    assert not last.more


async def test_the_next_page_starts_after_the_last_contact_shown(world: World) -> None:
    """A lead searched "a", deleted a03 from the first page's card, then clicked More: the
    next page started at the 11th match of the list as it was then, so a11 (now the 10th)
    was on neither page. One added before the last shown moved another onto both."""
    await world.import_csv("VIP", people(*[f"a{i:02d}@example.com,A{i:02d}" for i in range(1, 14)]))
    first = await search(world.db, TEAM, "a")
    assert first.hits[-1].email == "a10@example.com" and first.more
    await delete_contact(world.db, TEAM, first.hits[2].id, "U0002")
    await world.import_csv("VIP", people("a00@example.com,A00"))
    more = await search(world.db, TEAM, "a", offset=10, after=first.after)
    assert [h.email for h in more.hits] == [f"a{i:02d}@example.com" for i in (11, 12, 13)]
    assert not more.more and more.offset == 10


async def test_an_address_is_found_however_mail_tools_spell_it(world: World) -> None:
    """An international domain is stored in Unicode: `contacts delete` given the address as
    mail logs and bounce reports write it (punycode), or pasted from a mail client or a
    link, said there was no such contact; searching the whole address found nothing."""
    await world.import_csv("VIP", people("Ada@Bücher.de,Ada", "bob@example.com,Bob"))
    ada = await _id(world, "ada@bücher.de")
    for typed in ("ada@xn--bcher-kva.de", "ADA@XN--BCHER-KVA.DE", "mailto:ada@bücher.de",
                  "Ada Lovelace <ada@xn--bcher-kva.de>", " ada@BÜCHER.de "):  # fmt: skip
        assert await _id(world, typed) == ada, typed
        assert [h.id for h in (await search(world.db, TEAM, typed)).hits] == [ada], typed
    assert [h.id for h in (await search(world.db, TEAM, "ada@b")).hits] == [ada]  # a prefix
    with pytest.raises(ContactError, match="No contact with the email 'nobody'"):
        await _id(world, "nobody")


async def test_another_workspaces_contact_is_never_found_nor_changed(world: World) -> None:
    await world.import_csv("VIP", people("ours@example.com,Ours"))
    await ensure_workspace(world.db, OTHER)
    await import_files(world.db, OTHER, [("x.csv", io.BytesIO(
        b"email,first_name\ntheirs@example.com,Ours\n"))], segment="VIP",
        create_segment=True)  # fmt: skip
    theirs = await _id(world, "theirs@example.com", OTHER)
    assert [h.email for h in (await search(world.db, TEAM, "ours")).hits] == ["ours@example.com"]
    assert (await search(world.db, TEAM, "theirs")).hits == []
    other_segment = int(str(await world.scalar(
        "SELECT segment_id FROM segment_member WHERE contact_id = :c", c=theirs)))  # fmt: skip
    for change in (card(world.db, TEAM, theirs), delete_contact(world.db, TEAM, theirs, "U1"),
                   unsubscribe(world.db, TEAM, theirs, "U1"),
                   remove_from_segment(world.db, TEAM, theirs, other_segment, "U1")):  # fmt: skip
        with pytest.raises(ContactError, match="doesn't exist in this workspace"):
            await change
    with pytest.raises(ContactError, match="No contact with the email"):
        await find_by_email(world.db, TEAM, "theirs@example.com")
    assert await world.scalar("SELECT COUNT(*) FROM segment_member WHERE contact_id = :c",
                              c=theirs) == 1  # fmt: skip
    assert await world.scalar("SELECT subscribed FROM contact WHERE id = :c", c=theirs) in (1, True)
    assert await _audit(world) == []


async def test_accented_names_are_found_in_any_case(world: World) -> None:
    """SQLite's lower() folds A-Z only; its search looks such letters up in each case."""
    await world.import_csv("VIP", people("elodie@example.fr,Élodie,Dupré",
                                         "eloise@example.fr,ÉLOÏSE,ÖSTRÖM",
                                         "eliane@example.fr,éliane,östlund",
                                         header="email,first_name,last_name"))  # fmt: skip

    async def firsts(query: str) -> list[str]:
        return [h.first_name for h in (await search(world.db, TEAM, query)).hits]

    for query in ("Élo", "élo", "ÉLO", "éLo"):
        assert await firsts(query) == ["Élodie", "ÉLOÏSE"], query  # by email
    assert await firsts("élodie") == await firsts("ÉLODIE") == ["Élodie"]
    assert await firsts("éloï") == await firsts("ÉLOÏS") == ["ÉLOÏSE"]
    assert await firsts("éli") == await firsts("ÉLI") == ["éliane"]
    assert await firsts("öst") == await firsts("ÖST") == ["éliane", "ÉLOÏSE"]
    assert await firsts("élodie dupré") == await firsts("ÉLODIE DUPRÉ") == ["Élodie"]
    assert await firsts("éloïse östr") == ["ÉLOÏSE"]
    assert await firsts("élodie östr") == []
    assert await firsts("Dupre") == []  # an accent is a different letter, as on PostgreSQL


async def test_search_reads_only_index_ranges(world: World) -> None:
    """No lookup reads the whole table: each is a range of its index (after ANALYZE, on a
    table big enough for the planner to care)."""
    async with world.db.begin() as conn:
        await conn.execute(text(
            "INSERT INTO contact (team_id, email, email_key, first_name, last_name, subscribed, "
            "source, created_at, updated_at) VALUES (:t, :e, :e, :f, :l, :yes, 'csv', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
            [{"t": TEAM, "e": f"user{i}@example.com", "f": f"First{i}", "l": f"Last{i % 97}",
              "yes": True} for i in range(4000)])  # fmt: skip
        await conn.execute(text("ANALYZE contact" if world.db.dialect == "postgresql"
                                else "ANALYZE"))  # fmt: skip
    for query in ("ada", "ada love", "élo", "élo öst"):
        params, shape = search_params(TEAM, query, world.db.dialect)
        sql = search_sql(world.db.dialect, shape)
        async with world.db.begin() as conn:
            if world.db.dialect == "postgresql":
                plan = "\n".join(r[0] for r in await conn.execute(text("EXPLAIN " + sql), params))
                assert "Seq Scan" not in plan, plan
                for index in ("uq_contact_team_email", "ix_contact_first_name_prefix",
                              "ix_contact_last_name_prefix"):  # fmt: skip
                    assert f"Index Scan using {index}" in plan, plan
            else:
                plan = "\n".join(r[-1] for r in await conn.execute(
                    text("EXPLAIN QUERY PLAN " + sql), params))  # fmt: skip
                assert not re.search(r"^SCAN (contact|c)\b", plan, re.MULTILINE), plan
                assert "(team_id=? AND email_key>? AND email_key<?)" in plan, plan
                for index in ("ix_contact_first_name_prefix", "ix_contact_last_name_prefix"):
                    assert f"USING INDEX {index} (team_id=? AND <expr>>? AND <expr><?)" in plan
    assert len((await search(world.db, TEAM, "first1")).hits) == 10


async def _enrolled(world: World) -> tuple[int, int]:
    """ada in VIP and Newsletter, an advocate of Spring (targets VIP, invite held) and of
    Autumn; bob too. Returns (ada's id, VIP's id)."""
    await world.import_csv("VIP", people("ada@example.com,Ada", "bob@example.com,Bob"))
    await world.import_csv("Newsletter", people("ada@example.com,Ada"))
    spring = await world.campaign("Spring")
    await world.target(spring, "VIP", hold=3600)
    autumn = await world.campaign("Autumn")
    await world.target(autumn, "Newsletter")
    return await _id(world, "ADA@example.com"), await world.segment_id("VIP")


async def test_the_card_shows_segments_campaigns_and_invites(world: World) -> None:
    ada, _ = await _enrolled(world)
    shown = await card(world.db, TEAM, ada)
    assert shown.email == "ada@example.com" and shown.subscribed
    assert [s.name for s in shown.segments] == ["Newsletter", "VIP"]
    assert [(c.name, c.invite_state) for c in shown.campaigns] == [("Autumn", "queued"),
                                                                   ("Spring", "held")]  # fmt: skip
    assert shown.batch_id is not None and shown.default_locale == "en"
    assert {c.code for c in shown.campaigns} == {
        r[0] for r in await world.rows("SELECT code FROM advocate WHERE contact_id = :c", c=ada)}


async def test_remove_from_a_segment_keeps_the_contact_everywhere_else(world: World) -> None:
    ada, vip = await _enrolled(world)
    removed = await remove_from_segment(world.db, TEAM, ada, vip, "U0002")
    assert removed == RemovedFrom("VIP", enrolling=False)
    shown = await card(world.db, TEAM, ada)
    assert [s.name for s in shown.segments] == ["Newsletter"] and len(shown.campaigns) == 2
    assert [h.email for h in (await search(world.db, TEAM, "ada")).hits] == ["ada@example.com"]
    with pytest.raises(ContactError, match="isn't in VIP any more"):
        await remove_from_segment(world.db, TEAM, ada, vip, "U0002")
    assert await _audit(world) == [("U0002", Act.CONTACT_REMOVED_FROM_SEGMENT,
                                    "contact ada@example.com")]  # fmt: skip


async def test_unsubscribe_stops_unsent_invites_and_sticks(world: World) -> None:
    ada, _ = await _enrolled(world)
    assert await unsubscribe(world.db, TEAM, ada, "U0002") == 2
    states = await world.rows("SELECT state, reason FROM invite WHERE contact_id = :c", c=ada)
    assert states == [("not_emailed", "unsubscribed")] * 2
    assert await world.scalar("SELECT COUNT(*) FROM invite WHERE state IN ('queued', 'held')") == 1
    with pytest.raises(ContactError, match="already unsubscribed"):
        await unsubscribe(world.db, TEAM, ada, "U0002")
    await world.import_csv("VIP", people("ada@example.com,Ada,,yes",
                                         header="email,first_name,locale,accepts_marketing"))
    shown = await card(world.db, TEAM, ada)
    assert not shown.subscribed and shown.unsubscribed_at is not None  # no import undoes it
    await resubscribe(world.db, TEAM, ada, "U0002")
    shown = await card(world.db, TEAM, ada)
    assert shown.subscribed and shown.unsubscribed_at is None
    with pytest.raises(ContactError, match="already subscribed"):
        await resubscribe(world.db, TEAM, ada, "U0002")
    assert [a[1] for a in await _audit(world)] == [Act.CONTACT_UNSUBSCRIBED,
                                                   Act.CONTACT_RESUBSCRIBED]  # fmt: skip


async def test_a_lead_unsubscribes_a_contact_an_import_switched_off_for_good(
    world: World,
) -> None:
    """Ada was imported saying no to marketing, then asked a lead never to email her. The
    lead's Unsubscribe was refused ("already unsubscribed"), so the next --update-existing
    import saying yes subscribed her again and a campaign could email her."""
    await world.import_csv("VIP", people("ada@example.com,Ada,,no",
                                         header="email,first_name,locale,accepts_marketing"))
    ada = await _id(world, "ada@example.com")
    (hit,) = (await search(world.db, TEAM, "ada")).hits
    assert (hit.subscribed, hit.unsubscribed) == (False, False)  # "not subscribed"
    assert await unsubscribe(world.db, TEAM, ada, "U0002") == 0
    (hit,) = (await search(world.db, TEAM, "ada")).hits
    assert (hit.subscribed, hit.unsubscribed) == (False, True)  # "unsubscribed"
    csv = "email,first_name,accepts_marketing\nada@example.com,Ada,yes\n"
    await import_files(world.db, TEAM, [("sync.csv", io.BytesIO(csv.encode()))], segment="VIP",
                       update_existing=True)  # fmt: skip
    shown = await card(world.db, TEAM, ada)
    assert not shown.subscribed and shown.unsubscribed_at is not None
    with pytest.raises(ContactError, match="already unsubscribed"):
        await unsubscribe(world.db, TEAM, ada, "U0002")
    assert [a[1] for a in await _audit(world)] == [Act.CONTACT_UNSUBSCRIBED]


async def test_delete_takes_everything_of_the_contact_and_retires_its_codes(world: World) -> None:
    ada, _ = await _enrolled(world)
    codes = {r[0] for r in await world.rows("SELECT code FROM advocate WHERE contact_id = :c",
                                            c=ada)}  # fmt: skip
    result = await delete_contact(world.db, TEAM, ada, "cli")
    assert (result.email, result.segments, result.advocates, result.invites) == (
        "ada@example.com", 2, 2, 2)  # fmt: skip
    for table in ("contact WHERE id", "segment_member WHERE contact_id",
                  "advocate WHERE contact_id", "invite WHERE contact_id"):  # fmt: skip
        assert await world.scalar(f"SELECT COUNT(*) FROM {table} = :c", c=ada) == 0, table
    assert {r[0] for r in await world.rows("SELECT code FROM retired_code WHERE team_id = :t",
                                           t=TEAM)} == codes  # fmt: skip
    bob = await _id(world, "bob@example.com")
    assert await world.scalar("SELECT COUNT(*) FROM advocate WHERE contact_id = :c", c=bob) == 1
    assert await world.scalar("SELECT COUNT(*) FROM segment_member WHERE contact_id = :c",
                              c=bob) == 1  # fmt: skip
    with pytest.raises(ContactError, match=re.escape(GONE)):
        await delete_contact(world.db, TEAM, ada, "cli")
    entries = await world.rows("SELECT actor, action, subject, detail FROM audit_entry "
                               "WHERE action LIKE 'contact.%'")  # fmt: skip
    assert entries == [("cli", Act.CONTACT_DELETED, "contact ada@example.com",
                        "from All Customers, 2 segments and 2 campaigns (2 referral links "
                        "retired, 2 invite records deleted)")]  # fmt: skip


async def test_a_contact_deleted_after_it_unsubscribed_comes_back_unsubscribed(
    world: World,
) -> None:
    """Ada unsubscribed, then a lead deleted her: the next import of the same list (VIP,
    which a live campaign targets) created her again subscribed and queued her invite. Her
    unsubscribe now outlives her; a resubscribe by a lead lifts it."""
    ada, _ = await _enrolled(world)
    await unsubscribe(world.db, TEAM, ada, "U1")
    await delete_contact(world.db, TEAM, ada, "U1")
    await world.import_csv("VIP", people("ada@example.com,Ada", "cy@example.com,Cy"))
    again = await _id(world, "ada@example.com")
    assert await world.rows("SELECT c.email, c.subscribed, c.unsubscribed_at IS NOT NULL, "
                            "i.state FROM contact c JOIN invite i ON i.contact_id = c.id "
                            "WHERE c.email IN ('ada@example.com', 'cy@example.com') "
                            "ORDER BY c.email") in (
        [("ada@example.com", False, True, "not_emailed"),
         ("cy@example.com", True, False, "queued")],
        [("ada@example.com", 0, 1, "not_emailed"), ("cy@example.com", 1, 0, "queued")],
    )  # fmt: skip
    await resubscribe(world.db, TEAM, again, "U1")  # she agreed again
    await delete_contact(world.db, TEAM, again, "U1")
    await world.import_csv("Newsletter", people("ada@example.com,Ada"))
    assert await world.scalar("SELECT subscribed FROM contact WHERE email = 'ada@example.com'"
                              ) in (True, 1)  # fmt: skip


async def test_a_suppressed_address_comes_back_with_the_day_it_unsubscribed(
    world: World,
) -> None:
    """Ada unsubscribed on one day, a lead deleted her weeks later, and an import brought her
    back: her card said she unsubscribed on the day of the deletion."""
    ada, _ = await _enrolled(world)
    await unsubscribe(world.db, TEAM, ada, "U1")
    async with world.db.begin() as conn:  # she unsubscribed 30 days ago
        await conn.execute(text("UPDATE contact SET unsubscribed_at = :d WHERE id = :c")
                           .bindparams(bindparam("d", type_=UTCDateTime())),
                           {"d": datetime(2024, 3, 1, 9, 30, tzinfo=UTC), "c": ada})
    await delete_contact(world.db, TEAM, ada, "U1")
    await world.import_csv("VIP", people("ada@example.com,Ada"))
    again = await card(world.db, TEAM, await _id(world, "ada@example.com"))
    assert not again.subscribed
    assert again.unsubscribed_at == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


class _DeletesWhileSending:
    """The mail server's side: while one message is being handed over, a lead deletes its
    contact (the invite row goes while it is `sending`)."""

    def __init__(self, world: World, outbox: Path, victim: str) -> None:
        self.world, self.victim = world, victim
        self.outbox = OutboxDirSender(outbox)

    async def __aenter__(self) -> _DeletesWhileSending:
        await self.outbox.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.outbox.__aexit__(*exc)  # type: ignore[arg-type]

    async def send(self, message: EmailMessage) -> SendResult:
        if message["To"] == self.victim:
            state = await self.world.scalar("SELECT i.state FROM invite i JOIN contact c ON "
                                            "c.id = i.contact_id WHERE c.email = :e",
                                            e=self.victim)  # fmt: skip
            assert state == "sending"
            await delete_contact(self.world.db, TEAM, await _id(self.world, self.victim), "U0002")
        return await self.outbox.send(message)


async def test_deleting_a_contact_mid_send_doesnt_break_the_sender(
    world: World, tmp_path: Path
) -> None:
    await world.import_csv("VIP", people("ada@example.com,Ada", "bob@example.com,Bob",
                                         "cy@example.com,Cy"))  # fmt: skip
    spring = await world.campaign("Spring")
    await world.target(spring, "VIP")
    enrollment = int(str(await world.scalar("SELECT MAX(id) FROM enrollment")))
    sender = _DeletesWhileSending(world, tmp_path / "outbox", "bob@example.com")
    await send_invites(world.db, TEAM, enrollment, sender=sender,  # type: ignore[arg-type]
                       links=Links("https://bot.example", SECRET))  # fmt: skip
    states = dict(await world.rows("SELECT c.email, i.state FROM invite i "
                                   "JOIN contact c ON c.id = i.contact_id"))  # fmt: skip
    assert states == {"ada@example.com": "sent", "cy@example.com": "sent"}
    assert await world.scalar("SELECT COUNT(*) FROM invite") == 2


async def test_a_search_of_more_contacts_than_a_statement_takes_parameters_lists_their_segments(
    world: World,
) -> None:
    """The segments of the contacts found were read with one parameter a contact:
    `contacts search a --limit 40000` failed on PostgreSQL with "the number of query
    arguments cannot exceed 32767" printed raw (SQLite takes 32,766 by default, 250,000 as
    Debian builds it)."""
    count = 33_000
    await world.import_csv("VIP", people("seed@example.com,Seed,"))
    vip = await world.segment_id("VIP")
    async with world.db.begin() as conn:  # in bulk: 33,000 imported rows take a while
        await conn.execute(text(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
            "INSERT INTO contact (team_id, email, email_key, first_name, last_name, subscribed, "
            "source, created_at, updated_at) SELECT :t, 'a' || CAST(i AS TEXT) || '@example.com', "
            "'a' || CAST(i AS TEXT) || '@example.com', '', '', :yes, 'manual', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM n"),
            {"count": count, "t": TEAM, "yes": True})  # fmt: skip
        await conn.execute(text(
            "INSERT INTO segment_member (segment_id, contact_id, team_id, added_at) "
            "SELECT :s, id, team_id, CURRENT_TIMESTAMP FROM contact WHERE team_id = :t "
            "AND email LIKE 'a%'"), {"s": vip, "t": TEAM})  # fmt: skip
    if world.db.dialect == "postgresql":  # as autovacuum would: planned without, 20 s
        async with world.db.begin() as conn:
            await conn.execute(text("ANALYZE contact"))
    page = await search(world.db, TEAM, "a", limit=40_000)
    assert (len(page.hits), page.more) == (count, False)
    assert {h.segments for h in page.hits} == {("VIP",)}


async def test_a_contact_typed_into_an_import_is_forgotten_with_its_staged_rows(
    world: World,
) -> None:  # fmt: skip
    """Ada typed into an import by hand (rejected), then deleted, and the import's staged
    rows purged after STAGED_RETENTION_DAYS: the source of one customer is labelled with the
    address, and import_source rows are kept with their import, so the address stayed."""
    from datetime import timedelta

    from bot.imports.batches import create_batch, stage_contact
    from bot.imports.retention import FORGOTTEN_CUSTOMER, purge_staged
    from bot.imports.review import reject
    from models.clock import utcnow

    await world.import_csv("VIP", people("ada@example.com,Ada"))
    batch = await create_batch(world.db, TEAM, await world.segment_id("VIP"), "U2")
    await stage_contact(world.db, TEAM, batch.id or 0, email="ada@example.com",
                        first_name="Ada", last_name="Lovelace")  # fmt: skip
    await reject(world.db, TEAM, batch.id or 0, "U1")
    await delete_contact(world.db, TEAM, await _id(world, "ada@example.com"), "U1")
    async with world.db.begin() as conn:  # every import ended 31 days ago
        await conn.execute(text("UPDATE import_batch SET finished_at = :d").bindparams(
            bindparam("d", type_=UTCDateTime())), {"d": utcnow() - timedelta(days=31)})
    await purge_staged(world.db, TEAM, 30, 7)
    assert await world.scalar("SELECT COUNT(*) FROM staged_row") == 0
    assert await world.rows("SELECT kind, label FROM import_source WHERE kind = 'contact'") == [
        ("contact", FORGOTTEN_CUSTOMER)]  # fmt: skip
