"""A workspace with contacts in segments, imported the way people import them."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from bot.campaigns import service
from bot.campaigns.enroll import EnrollResult, run_enrollment
from bot.imports.importer import import_files
from bot.workspaces import ensure_workspace, find_segment
from models import CampaignState, Database

TEAM = "T0001"
SECRET = "test-secret"


@dataclass
class World:
    db: Database

    async def import_csv(self, segment: str, csv: str) -> None:
        await import_files(self.db, TEAM, [("people.csv", io.BytesIO(csv.encode()))],
                           segment=segment, create_segment=True)  # fmt: skip

    async def segment_id(self, name: str) -> int:
        segment = await find_segment(self.db, TEAM, name)
        assert segment is not None
        return segment.id or 0

    async def campaign(self, name: str = "Spring", *, live: bool = True, **fields: object) -> int:
        campaign = await service.create_campaign(
            self.db, TEAM, name, store_url=str(fields.pop("store_url", "https://shop.example/")),
            sender=str(fields.pop("sender", "Shop <hello@shop.example>")),
            offer=str(fields.pop("offer", "Give 10%, get $10")), **fields,  # type: ignore[arg-type]
        )  # fmt: skip
        if live:
            await service.set_state(self.db, TEAM, campaign.id or 0, CampaignState.LIVE,
                                    requested_by="U1", queue_job=False)  # fmt: skip
        return campaign.id or 0

    async def emailed_then_deleted(self) -> int:
        """Spring, live, targeting VIP, whose one contact a@example.com was sent its invite
        and then deleted (the campaign remembers the address): Spring's id."""
        from bot.contact_admin import delete_contact

        spring = await self.campaign()
        await self.import_csv("VIP", people("a@example.com,A,"))
        await self.target(spring, "VIP")
        async with self.db.begin() as conn:  # its invite went out
            await conn.execute(text("UPDATE invite SET state = 'sent'"))
        ada = int(str(await self.scalar("SELECT id FROM contact WHERE email = 'a@example.com'")))
        await delete_contact(self.db, TEAM, ada, "U1")
        return spring

    async def target(self, campaign_id: int, segment: str, hold: float = 0) -> EnrollResult:
        enrollment = await service.target(self.db, TEAM, campaign_id,
                                          await self.segment_id(segment), requested_by="U1",
                                          queue_job=False)  # fmt: skip
        assert enrollment is not None
        return await run_enrollment(self.db, TEAM, enrollment, hold_seconds=hold)

    async def scalar(self, sql: str, **params: object) -> object:
        async with self.db.begin() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def rows(self, sql: str, **params: object) -> list[tuple]:
        async with self.db.begin() as conn:
            return [tuple(r) for r in await conn.execute(text(sql), params)]

    async def leave(self, how: str, segment_id: int, email: str) -> bool:
        """`email` is no longer in the segment: "segment deleted" or "contact removed" (by a
        lead, U1); False for any other `how`, which the test does its own way."""
        from bot.contact_admin import remove_from_segment
        from bot.segments import delete_segment

        if how == "segment deleted":
            await delete_segment(self.db, TEAM, segment_id)
        elif how == "contact removed":
            contact = int(str(await self.scalar("SELECT id FROM contact WHERE email = :e",
                                                e=email)))  # fmt: skip
            await remove_from_segment(self.db, TEAM, contact, segment_id, "U1")
        else:
            return False
        return True


@pytest.fixture
async def world(db: Database) -> World:
    await ensure_workspace(db, TEAM)
    return World(db)


def people(*rows: str, header: str = "email,first_name,locale") -> str:
    return header + "\n" + "\n".join(rows) + "\n"


async def reported_in_a_thread(world: World) -> None:
    """The enrollments report in a Slack thread (targeted from an import's): a report is
    queued only where there is one to show it (bot.notify.enqueue_enrollment_report_in)."""
    async with world.db.begin() as conn:
        await conn.execute(text("UPDATE enrollment SET channel_id = 'C0001', "
                                "thread_ts = '1700000000.000100'"))
