"""The review's preview of whom live campaigns will invite, against what enrolling then does."""

from __future__ import annotations

import io

from bot.campaigns import service
from bot.campaigns.preview import preview_batch
from bot.contact_admin import delete_contact, unsubscribe
from bot.imports.batches import add_source, create_batch, stage_csv
from bot.workspaces import find_segment
from models import CampaignState, SourceKind
from tests.campaigns.conftest import TEAM, World, people
from tests.imports import exports


async def _staged(world: World, segment: str, csv: str) -> int:
    """A draft import of `csv` into `segment`, its rows staged (as under review)."""
    segment_id = await world.segment_id(segment)
    batch = await create_batch(world.db, TEAM, segment_id, "U1")
    source = await add_source(world.db, TEAM, batch.id or 0, SourceKind.CSV, "p.csv")
    await stage_csv(world.db, TEAM, source.id or 0, io.BytesIO(csv.encode()))
    return batch.id or 0


async def test_an_import_into_an_excluded_segment_is_previewed_as_excluded(world: World) -> None:
    """Spring targets All Customers and excludes Wholesale: new contacts imported into
    Wholesale were previewed as "will be invited", and enrolling excluded them all."""
    await world.import_csv("Wholesale", people("w0@example.com,W,"))
    spring = await world.campaign(live=False)
    everyone = await find_segment(world.db, TEAM, "All Customers")
    assert everyone is not None
    await service.target(world.db, TEAM, spring, everyone.id or 0, requested_by="U1",
                         queue_job=False)  # fmt: skip
    await service.exclude(world.db, TEAM, spring, await world.segment_id("Wholesale"))
    await service.set_state(world.db, TEAM, spring, CampaignState.LIVE, requested_by="U1",
                            queue_job=False)  # fmt: skip
    batch = await _staged(world, "Wholesale", people("w1@example.com,W,", "w2@example.com,W,"))
    [shown] = await preview_batch(world.db, TEAM, batch, await world.segment_id("Wholesale"))
    assert (shown.will_invite, shown.excluded) == (0, 2)


async def test_a_suppressed_address_is_previewed_as_unsubscribed(world: World) -> None:
    """A contact deleted after it unsubscribed comes back unsubscribed: the preview said it
    would be invited."""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign()
    await world.target(spring, "VIP")
    ada = int(str(await world.scalar("SELECT id FROM contact WHERE email = 'a@example.com'")))
    await unsubscribe(world.db, TEAM, ada, "U1")
    await delete_contact(world.db, TEAM, ada, "U1")
    batch = await _staged(world, "VIP", people("a@example.com,A,"))
    [shown] = await preview_batch(world.db, TEAM, batch, await world.segment_id("VIP"))
    assert (shown.will_invite, shown.without_email) == (0, {"unsubscribed": 1})


async def test_an_unsubscribe_later_in_the_import_is_previewed_as_not_subscribed(
    world: World,
) -> None:
    """"yes" then "no" for one address: the preview promised an invite the apply now won't
    send (the later row's word goes to the row imported). Never having subscribed, it is
    "not subscribed", as its invite will say."""
    await world.import_csv("VIP", people("a@example.com,A,"))
    spring = await world.campaign()
    await world.target(spring, "VIP")
    batch = await _staged(world, "VIP", "email,accepts email marketing\n"
                          "b@example.com,yes\nb@example.com,no\nc@example.com,yes\n")
    [shown] = await preview_batch(world.db, TEAM, batch, await world.segment_id("VIP"))
    assert (shown.will_invite, shown.without_email) == (1, {"not subscribed": 1})


async def test_an_address_mailchimp_cleaned_is_previewed_as_not_subscribed(
    world: World,
) -> None:
    """Mailchimp's cleaned export (bounced@ bounced) beside a list saying "yes" for bounced@:
    the apply imports bounced@ not subscribed, so the preview mustn't promise its invite."""
    await world.import_csv("VIP", people("a@example.com,A,"))
    spring = await world.campaign()
    await world.target(spring, "VIP")
    batch = await _staged(world, "VIP", "email,accepts email marketing\n"
                          "bounced@example.com,yes\nc@example.com,yes\n")
    cleaned = await add_source(world.db, TEAM, batch, SourceKind.CSV, exports.CLEANED_CSV)
    await stage_csv(world.db, TEAM, cleaned.id or 0, io.BytesIO(exports.mailchimp_cleaned()))
    [shown] = await preview_batch(world.db, TEAM, batch, await world.segment_id("VIP"))
    assert (shown.will_invite, shown.without_email) == (1, {"not subscribed": 1})


async def test_a_contact_update_existing_resubscribes_is_previewed_as_invited(
    world: World,
) -> None:
    """A known contact a file had unsubscribed, imported with --update-existing and "yes":
    the apply gives its consent back and it is emailed, while the preview said it wouldn't
    be ("unsubscribed")."""
    await world.import_csv("Other", people("a@example.com,A,no",
                                           header="email,first_name,subscribed"))  # fmt: skip
    spring = await world.campaign()
    await world.import_csv("VIP", people("z@example.com,Z,"))
    await world.target(spring, "VIP")
    vip = await world.segment_id("VIP")
    # a cell saying nothing (no "yes") gives nothing back: it stays unsubscribed
    for update_existing, consent, invited in ((False, b"yes", 0), (True, b"yes", 1),
                                              (True, b"", 0)):  # fmt: skip
        batch = await create_batch(world.db, TEAM, vip, "U1", update_existing=update_existing)
        source = await add_source(world.db, TEAM, batch.id or 0, SourceKind.CSV, "p.csv")
        await stage_csv(world.db, TEAM, source.id or 0, io.BytesIO(
            b"email,first_name,subscribed\na@example.com,A," + consent + b"\n"))  # fmt: skip
        [shown] = await preview_batch(world.db, TEAM, batch.id or 0, vip)
        assert shown.will_invite == invited, (update_existing, consent, shown)


async def test_not_subscribed_and_unsubscribed_are_previewed_apart_as_invites_record_them(
    world: World,
) -> None:
    """Contacts who never said yes were previewed as "unsubscribed" beside those who used
    the unsubscribe link, while their invites say "not subscribed" (enroll.consent_reason)."""
    await world.import_csv("Other", people("link@example.com,L,yes", "never@example.com,N,no",
                                           "gone@example.com,G,yes",
                                           header="email,first_name,subscribed"))  # fmt: skip
    for email in ("link@example.com", "gone@example.com"):
        contact = int(str(await world.scalar("SELECT id FROM contact WHERE email = :e",
                                             e=email)))  # fmt: skip
        await unsubscribe(world.db, TEAM, contact, "U1")
        if email == "gone@example.com":  # deleted after it unsubscribed: suppressed
            await delete_contact(world.db, TEAM, contact, "U1")
    spring = await world.campaign()
    await world.import_csv("VIP", people("z@example.com,Z,"))
    await world.target(spring, "VIP")
    csv = people("link@example.com,L,yes", "never@example.com,N,", "gone@example.com,G,yes",
                 "fileno@example.com,F,no", "new@example.com,W,yes",
                 header="email,first_name,subscribed")  # fmt: skip
    batch = await _staged(world, "VIP", csv)
    [shown] = await preview_batch(world.db, TEAM, batch, await world.segment_id("VIP"))
    expected = {"not subscribed": 2, "unsubscribed": 2}  # never@, fileno@; link@, gone@
    assert (shown.will_invite, shown.without_email) == (1, expected)
    # and enrolling them says the same of each (the same file, imported and targeted)
    await world.import_csv("VIP", csv)
    await world.target(spring, "VIP")
    reasons = await world.rows("SELECT COALESCE(i.reason, ''), COUNT(*) FROM invite i "
                               "JOIN contact c ON c.id = i.contact_id "
                               "WHERE c.email <> 'z@example.com' GROUP BY i.reason")  # fmt: skip
    assert dict(reasons) == {**expected, "": 1}
