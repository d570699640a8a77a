"""Publishing the App Home tab, and republishing it for the people who look at it.

Kept apart from `home.py` (the listeners) so that anything that changes what Home shows (an
import finishing, an undo, a segment renamed) can refresh it without importing listeners.
Home is per person, so a change republishes the tab of everyone in the workspace who opened
it lately; the data is read once for all of them.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from aiohttp import ClientSession
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy import case, delete
from sqlmodel import col, func, select

from bot.audit import EnrollmentFigures, enrollment_figures
from bot.campaigns.invites import waiting_for_a_sender
from bot.campaigns.service import list_campaigns
from bot.home_refresh import VIEWERS_KEPT, HomeRefresher
from bot.imports.undo import LEASE_SECONDS, unattended_undo, undoable
from bot.imports.undo_window import undoable_since
from bot.leads import Role
from bot.mailchimp.accounts import connection
from bot.workspaces import segment_sizes
from handlers.home_messages import (
    MAX_IMPORTS_EVER,
    MAX_IMPORTS_SHOWN,
    MAX_SEGMENTS_EVER,
    MAX_SEGMENTS_SHOWN,
    HomeData,
    ImportRow,
    home_view,
    outsider_home_view,
    segment_rows,
    unknown_viewer_home_view,
)
from handlers.slack_errors import say_token_refused, slack_error, token_refused
from models import BatchStatus, Database, HomeViewer, ImportBatch, Segment, Workspace
from models.clock import utcnow
from models.db import upsert

if TYPE_CHECKING:
    from handlers.context import Deps  # it imports the notifier, which imports this module

log = logging.getLogger(__name__)
EXPANDED_KEPT = timedelta(hours=1)  # how long *Show more* holds after the last open or click
UNDO_DAYS = 7  # UNDO_WINDOW_DAYS' default, for refreshes that don't pass the setting
MAX_REPUBLISHED = 50  # per change: the most recent viewers (views.publish is Tier 4)
REREADS = 3  # reads of the data per publish, while it keeps changing meanwhile
NONE = EnrollmentFigures()  # an import that led to no enrollment
# A refresh asks Slack who each viewer is (users.info, Tier 4: about 100 a minute): up to
# MAX_REPUBLISHED calls per change. An answer this recent is taken as still true instead;
# opening Home or clicking in it always asks. At most this many answers are kept.
PROFILE_SECONDS = 60.0
PROFILES_KEPT = 1000


async def recent_imports(
    db: Database, team_id: str, limit: int = MAX_IMPORTS_SHOWN, *, undo_days: int = UNDO_DAYS,
    lease_seconds: float = LEASE_SECONDS,
) -> tuple[list[ImportRow], int]:
    """The workspace's newest imports (at most `limit`) with their segment's name, and how
    many imports it has in all. `lease_seconds` (JOB_LEASE_SECONDS): how long an undo's
    runner is taken for alive, as the Undo modal does. A dry run's batch is no import: it
    was listed "waiting for review", and for good when its process was killed."""
    undo_since = await undoable_since(db, team_id, undo_days)
    async with db.session() as session:
        rows = (await session.exec(
            select(ImportBatch, Segment.name)
            .join(Segment, col(Segment.id) == col(ImportBatch.segment_id))
            .where(col(ImportBatch.team_id) == team_id, col(Segment.team_id) == team_id,
                   col(ImportBatch.dry_run).is_(False))
            .order_by(col(ImportBatch.created_at).desc(), col(ImportBatch.id).desc())
            .limit(limit)
        )).all()  # fmt: skip
        total = (await session.exec(
            select(func.count()).select_from(ImportBatch).where(
                col(ImportBatch.team_id) == team_id, col(ImportBatch.dry_run).is_(False))
        )).one()  # fmt: skip
    figures = await enrollment_figures(db, team_id, {b.id or 0: b.message_ts for b, _ in rows})
    # an undo nobody runs (stopped, or waiting with no worker): *Undo* finishes it, or says how
    unattended = {b.id or 0: why for b, _ in rows if b.status == BatchStatus.UNDOING
                  and (why := await unattended_undo(db, team_id, b.id or 0,
                                                    lease_seconds=lease_seconds)) is not None}
    imports = [
        ImportRow(batch_id=b.id or 0, segment=name, status=b.status, requested_by=b.requested_by,
                  approved_by=b.approved_by, cancelled_by=b.cancelled_by,
                  new_contacts=b.new_contacts, added_to_segment=b.added_to_segment,
                  error=b.error, created_at=b.created_at, finished_at=b.finished_at,
                  undone_by=b.undone_by, consent_by=b.consent_by,
                  can_undo=(undoable(b) and b.finished_at is not None
                            and b.finished_at >= undo_since) or (b.id or 0) in unattended,
                  undo_unattended=unattended.get(b.id or 0),
                  enrolled=figures.get(b.id or 0, NONE).enrolled,
                  invited=figures.get(b.id or 0, NONE).sent)
        for b, name in rows
    ]  # fmt: skip
    return imports, int(total)


async def home_data(db: Database, team_id: str, *, imports_shown: int = MAX_IMPORTS_SHOWN,
                    segments_shown: int | None = None, undo_days: int = UNDO_DAYS,
                    lease_seconds: float = LEASE_SECONDS,
                    secret_key: str | None = None) -> HomeData:  # fmt: skip
    """`secret_key`: SECRET_KEY, to tell whether Mailchimp's saved credentials can be read
    (None: not asked, shown as connected)."""
    imports_shown = max(1, min(imports_shown, MAX_IMPORTS_EVER))
    imports, total = await recent_imports(db, team_id, imports_shown, undo_days=undo_days,
                                          lease_seconds=lease_seconds)  # fmt: skip
    return HomeData(
        segments=segment_rows(await segment_sizes(db, team_id)),
        campaigns=await list_campaigns(db, team_id),
        imports=imports,
        imports_total=total,
        mailchimp=await connection(db, team_id, secret_key=secret_key),
        imports_shown=imports_shown,
        segments_shown=segments_shown,
        # invites due that no running worker can send (`lease_seconds`: how long a worker
        # is taken for alive), as the campaign list says them
        waiting=await waiting_for_a_sender(db, team_id, lease_seconds),
    )


@dataclass(frozen=True, slots=True)
class Lists:
    """How far someone expanded Home's lists with *Show more* (None: the first page)."""

    segments: int | None = None
    imports: int | None = None

    @classmethod
    def chosen(cls, segments: int, imports: int) -> Lists:
        """A *Show more* / *Show less* button's choice, within what Home can hold (its value
        comes from the client); a first page is stored as None."""
        segments = max(1, min(segments, MAX_SEGMENTS_EVER))
        imports = max(1, min(imports, MAX_IMPORTS_EVER))
        return cls(None if segments <= MAX_SEGMENTS_SHOWN else segments,
                   None if imports <= MAX_IMPORTS_SHOWN else imports)  # fmt: skip

    @property
    def imports_shown(self) -> int:
        return self.imports or MAX_IMPORTS_SHOWN

    def of(self, data: HomeData) -> HomeData:
        """`data` shown with these lists (it may hold more imports than they show)."""
        return replace(data, segments_shown=self.segments, imports_shown=self.imports_shown)


FIRST_PAGES = Lists()


@dataclass(frozen=True, slots=True)
class Shape:
    """What one person's Home depends on besides the data: the lists they expanded, and
    who they are (only leads are offered the lead-only buttons; a member of another
    organisation, whom a shared channel brought, is shown none of the workspace's data)."""

    lists: Lists
    role: Role

    def view(self, data: HomeData) -> View:
        if self.role is Role.OUTSIDER:
            return outsider_home_view()
        return home_view(self.lists.of(data), lead=self.role is Role.LEAD)


async def publish_home(db: Database, client: AsyncWebClient, team_id: str, user_id: str, *,
                       team_leads: Sequence[str], lists: Lists | None = None,
                       undo_days: int = UNDO_DAYS, lease_seconds: float = LEASE_SECONDS,
                       secret_key: str | None = None) -> None:  # fmt: skip
    """Show one person their Home now, and remember them for later republishing.

    `lists`: what they just chose with *Show more* or *Show less*, kept for the republishes
    that follow; without it (they opened the tab), what they chose last, if it still holds.
    The choice is written before the publish so that a republish racing it shows it too
    (one that read the lists before, and published after, reads them again: see
    `_publish_current`)."""
    role = await _role(db, _remembering(client, team_id, fresh=True), team_id, user_id,
                       team_leads)  # fmt: skip
    if role is None or role is Role.OUTSIDER:  # not remembered: nothing is republished
        outsider = role is Role.OUTSIDER
        log.info("%s shown no Home of %s (%s)", user_id, team_id,
                 "not a member" if outsider else "Slack couldn't say who")  # fmt: skip
        view = outsider_home_view() if outsider else unknown_viewer_home_view()
        await client.views_publish(user_id=user_id, view=view)
        if outsider and await is_home_viewer(db, team_id, user_id):
            await _forget_viewers(db, team_id, [user_id])
        return
    if lists is not None:
        await _seen(db, team_id, user_id, lists)
    await _publish_current(db, client, team_id, {user_id: role}, undo_days=undo_days,
                           lease_seconds=lease_seconds, secret_key=secret_key,
                           quiet=False)  # fmt: skip
    if lists is None:
        await _seen(db, team_id, user_id)


async def refresh_homes(db: Database, client: AsyncWebClient, team_id: str, *,
                        team_leads: Sequence[str], undo_days: int = UNDO_DAYS,
                        lease_seconds: float = LEASE_SECONDS,
                        secret_key: str | None = None) -> None:  # fmt: skip
    """Republish Home for the workspace's recent viewers, each with the lists they expanded
    and the buttons they may use (`team_leads`: TEAM_LEADS, for `is_lead`). Never raises:
    Home is a view of the data, and a change already made must not look failed because a
    tab didn't refresh.

    A viewer found to be no member any more (a lead made a guest, whom Slack's `user_change`
    takes off the list and who is refreshed with everyone; moved out) is published the
    outsider's Home once, so the workspace's data leaves their screen, and then forgotten
    as `publish_home` forgets them: they were republished it after every change, a
    views.publish each, until VIEWERS_KEPT ran out."""
    try:
        now = utcnow()
        async with db.begin() as conn:
            await conn.execute(delete(HomeViewer).where(
                col(HomeViewer.team_id) == team_id,
                col(HomeViewer.opened_at) < now - VIEWERS_KEPT))  # fmt: skip
            users = (await conn.execute(
                select(HomeViewer.user_id).where(col(HomeViewer.team_id) == team_id)
                .order_by(col(HomeViewer.opened_at).desc()).limit(MAX_REPUBLISHED)
            )).scalars().all()  # fmt: skip
        if not users:
            return
        # one Slack couldn't say who is just now keeps the Home they have
        asking = _remembering(client, team_id, fresh=False)
        viewers = {user_id: role for user_id in users
                   if (role := await _role(db, asking, team_id, user_id, team_leads)) is not None}
        if not viewers:
            return
        await _publish_current(db, client, team_id, viewers, undo_days=undo_days,
                               lease_seconds=lease_seconds, secret_key=secret_key,
                               quiet=True)  # fmt: skip
        if outsiders := [user_id for user_id, role in viewers.items() if role is Role.OUTSIDER]:
            # as they were when read: one who opened Home since (a member again) stays
            await _forget_viewers(db, team_id, outsiders, opened_before=now)
    except Exception as exc:
        if refused := token_refused(exc):  # every viewer's would be refused too
            say_token_refused(log, client, refused, f"Home's refresh (team={team_id})",
                              again=logging.DEBUG)  # fmt: skip
            return
        log.exception("Home not republished for team=%s", team_id)


async def _publish_current(db: Database, client: AsyncWebClient, team_id: str,
                           viewers: Mapping[str, Role], *, undo_days: int,
                           lease_seconds: float, secret_key: str | None,
                           quiet: bool) -> None:  # fmt: skip
    """Publish Home to `viewers` (the data read once, one view per shape), then read the
    data and the lists they expanded again and republish the views that changed, a few
    times at most.

    Two changes a moment apart each republish Home; the refresh that read first can land
    last (Slack answered it slowly) and put back the Home of before the second change, for
    good. Reading again once its publishes landed, the late one sees the newer data and
    publishes it. This holds whichever process ran the other refresh (serve's listeners, a
    worker), where a lock would order the refreshes of one process only. The lists are read
    again for the same reason: a *Show more* clicked while a refresh was under way was
    folded back by it, the refresh having read the lists before the click wrote them.

    `quiet`: a publish Slack refuses (a deactivated viewer, say) is logged and the others
    still get theirs; else it raises, and so does one refused for the bot token (nobody's
    would get through)."""
    shown: dict[str, dict[str, Any]] = {}  # viewer -> the view last published to them
    for _ in range(REREADS):
        shapes = {user_id: Shape(lists, viewers[user_id])
                  for user_id, lists in (await _lists_of(db, team_id, viewers)).items()}
        most = max(shape.lists.imports_shown for shape in shapes.values())
        data = await home_data(db, team_id, imports_shown=most, undo_days=undo_days,
                               lease_seconds=lease_seconds, secret_key=secret_key)  # fmt: skip
        views = {shape: shape.view(data) for shape in set(shapes.values())}
        drawn = {shape: view.to_dict() for shape, view in views.items()}
        changed = [user_id for user_id, shape in shapes.items()
                   if drawn[shape] != shown.get(user_id)]  # fmt: skip
        if not changed:
            return
        for user_id in changed:
            shape = shapes[user_id]
            try:
                await client.views_publish(user_id=user_id, view=views[shape])
            except SlackApiError as exc:
                if not quiet or token_refused(exc):
                    raise
                log.warning("Home not republished for team=%s user=%s: %s", team_id, user_id,
                            slack_error(exc))  # fmt: skip
            shown[user_id] = drawn[shape]


async def _role(db: Database, client: AsyncWebClient, team_id: str, user_id: str,
                team_leads: Sequence[str]) -> Role | None:  # fmt: skip
    """`role_in` (one users.info at most, as for a click), deciding what Home shows and
    offers; None when Slack can't say (users.info failed): the workspace's data would be
    shown to whoever it is, a member of another organisation perhaps."""
    from handlers.context import role_in  # it imports the notifier, which imports this module

    try:
        async with db.session() as session:
            exists = await session.get(Workspace, team_id) is not None
        if not exists:
            return await _role_in_new_workspace(client, team_id, user_id, team_leads)
        return await role_in(db, team_leads, client, team_id, user_id)
    except Exception as exc:
        if token_refused(exc):  # not about this viewer: Slack answers nobody now
            raise
        log.warning("Home of team=%s user=%s not shown: who they are is unknown: %r", team_id,
                    user_id, exc)  # fmt: skip
        return None


async def _role_in_new_workspace(client: AsyncWebClient, team_id: str, user_id: str,
                                 team_leads: Sequence[str]) -> Role:  # fmt: skip
    """`role_in` for a workspace with no row yet (Home opened before anything else), without
    its writes: it would create the workspace and seed its list, and opening Home only
    reads. Nobody is listed yet but TEAM_LEADS, who count once Slack says they are people of
    this workspace, as its admins and owners do."""
    from handlers.context import role_from  # see _role

    user = (await client.users_info(user=user_id)).get("user") or {}
    return role_from(user, team_id, listed=user_id in team_leads)


class _Profiles:
    """Slack's users.info answers about Home's viewers, by (team, user), with when each came;
    the least recently kept go first beyond PROFILES_KEPT."""

    def __init__(self) -> None:
        self._answers: OrderedDict[tuple[str, str], tuple[float, AsyncSlackResponse]] = (
            OrderedDict())

    def recent(self, key: tuple[str, str]) -> AsyncSlackResponse | None:
        kept = self._answers.get(key)
        if kept is None or time.monotonic() - kept[0] > PROFILE_SECONDS:
            return None
        return kept[1]

    def keep(self, key: tuple[str, str], answer: AsyncSlackResponse) -> None:
        self._answers[key] = (time.monotonic(), answer)
        self._answers.move_to_end(key)
        while len(self._answers) > PROFILES_KEPT:
            self._answers.popitem(last=False)


# per connection pool to Slack: the process's one (serve's, a worker's); a client with none
# of its own (the shell's, made per use) keeps nothing
_PROFILES: WeakKeyDictionary[ClientSession, _Profiles] = WeakKeyDictionary()


def _remembering(client: AsyncWebClient, team_id: str, *, fresh: bool) -> AsyncWebClient:
    """`client` whose users.info keeps its answers a while (`_Profiles`) and, unless `fresh`,
    answers from one younger than PROFILE_SECONDS. Only users.info changes: Home's viewers
    are who it asks about, through `role_in`, which decides from the answer."""
    if client.session is None:
        return client
    profiles = _PROFILES.setdefault(client.session, _Profiles())
    ask = client.users_info

    async def users_info(*, user: str, **kwargs: Any) -> AsyncSlackResponse:
        key = (team_id, user)
        if not fresh and not kwargs and (known := profiles.recent(key)) is not None:
            return known
        answer = await ask(user=user, **kwargs)
        profiles.keep(key, answer)
        return answer

    remembering = copy.copy(client)
    remembering.users_info = users_info  # type: ignore[method-assign]
    return remembering


async def is_home_viewer(db: Database, team_id: str, user_id: str) -> bool:
    """Has this person's Home been published with the workspace's data lately (a refresh
    republishes it)? A read on the reader: asked of Slack's news about someone, which comes
    for every profile edit."""
    return bool(await db.reader.rows(
        "SELECT 1 FROM home_viewer WHERE team_id = :t AND user_id = :u",
        {"t": team_id, "u": user_id}))  # fmt: skip


async def _forget_viewers(db: Database, team_id: str, user_ids: Sequence[str], *,
                          opened_before: datetime | None = None) -> None:  # fmt: skip
    """Members once, now not (made a guest, moved out): their Home isn't republished any
    more, and Slack's news about them (every status edit) no longer publishes it.
    `opened_before`: only if they last opened Home before then (a refresh's start, its role
    read after it): one who opened it since, a member again, was found one then and is
    kept; the refresh forgot them, and the Home they had just opened was republished after
    no change."""
    where = [col(HomeViewer.team_id) == team_id, col(HomeViewer.user_id).in_(user_ids)]
    if opened_before is not None:
        where.append(col(HomeViewer.opened_at) < opened_before)
    async with db.begin() as conn:
        await conn.execute(delete(HomeViewer).where(*where))


async def publish_for(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, *,
                      lists: Lists | None = None) -> None:  # fmt: skip
    """`publish_home` with the workspace's settings: their Home now, Slack asked afresh who
    they are (a refresh answers from users.info kept a minute); `lists` as there."""
    await publish_home(d.db, client, team_id, user_id, team_leads=d.settings.team_leads,
                       lists=lists, undo_days=d.settings.undo_window_days,
                       lease_seconds=d.settings.job_lease_seconds,
                       secret_key=d.settings.secret_key)  # fmt: skip


async def refresh_for(d: Deps, client: AsyncWebClient, team_id: str) -> None:
    """`refresh_homes` with the workspace's settings (the undo window decides *Undo*)."""
    await refresh_homes(d.db, client, team_id, team_leads=d.settings.team_leads,
                        undo_days=d.settings.undo_window_days,
                        lease_seconds=d.settings.job_lease_seconds,
                        secret_key=d.settings.secret_key)  # fmt: skip


def home_refresher(db: Database, client: AsyncWebClient, *, team_leads: Sequence[str],
                   undo_days: int, lease_seconds: float,
                   secret_key: str | None = None) -> HomeRefresher:  # fmt: skip
    """`refresh_homes` for a worker's `home_refresh` jobs (changes made from the shell)."""

    async def refresh(team_id: str) -> None:
        await refresh_homes(db, client, team_id, team_leads=team_leads, undo_days=undo_days,
                            lease_seconds=lease_seconds, secret_key=secret_key)  # fmt: skip

    return refresh


def _still_kept(opened_at: datetime, segments: int | None, imports: int | None,
                now: datetime) -> Lists:  # fmt: skip
    """The lists someone expanded, while they keep using Home (opened or clicked it within
    EXPANDED_KEPT); after that, the first pages: a tab left open all day folds back, and
    so does the Home they come back to tomorrow."""
    if opened_at < now - EXPANDED_KEPT:
        return FIRST_PAGES
    return Lists(segments, imports)


async def _lists_of(db: Database, team_id: str, user_ids: Iterable[str]) -> dict[str, Lists]:
    """The lists each of these people expanded, as they hold now (see `_still_kept`)."""
    users = list(user_ids)
    async with db.begin() as conn:
        rows = (await conn.execute(
            select(HomeViewer.user_id, HomeViewer.opened_at, HomeViewer.segments_shown,
                   HomeViewer.imports_shown)
            .where(col(HomeViewer.team_id) == team_id, col(HomeViewer.user_id).in_(users))
        )).all()  # fmt: skip
    now = utcnow()
    kept = {user_id: _still_kept(opened_at, segments, imports, now)
            for user_id, opened_at, segments, imports in rows}  # fmt: skip
    return {user_id: kept.get(user_id, FIRST_PAGES) for user_id in users}


async def _seen(db: Database, team_id: str, user_id: str, lists: Lists | None = None) -> None:
    """Upsert (team, user) -> now: one statement, so two tabs opening at once can't collide.

    With `lists`, they are the person's choice from now on; without, the choice stays if it
    still held (see `_still_kept`), else it is forgotten in the same statement, so opening
    Home after a while doesn't bring an old expansion back."""
    now = utcnow()
    table = HomeViewer.__table__  # type: ignore[attr-defined]
    if lists is None:
        stale = table.c.opened_at < now - EXPANDED_KEPT
        chosen = {"segments_shown": case((stale, None), else_=table.c.segments_shown),
                  "imports_shown": case((stale, None), else_=table.c.imports_shown)}  # fmt: skip
        values: dict[str, Any] = {}
    else:
        chosen = values = {"segments_shown": lists.segments, "imports_shown": lists.imports}
    async with db.begin() as conn:
        stmt = upsert(conn, HomeViewer).values(team_id=team_id, user_id=user_id,
                                                 opened_at=now, **values)  # fmt: skip
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["team_id", "user_id"], set_={"opened_at": now, **chosen}))  # fmt: skip


__all__ = ["Lists", "Shape", "home_data", "home_refresher", "publish_for", "publish_home",
           "recent_imports", "refresh_for", "refresh_homes"]
