"""A Mailchimp audience as a source of an import: its members become staged rows.

Only `subscribed` members are imported; unsubscribed, cleaned, pending, transactional and
archived ones are staged as skipped with their status as the reason, so the review message
counts them per status and the skipped-rows CSV lists them. Unsubscribed and non-subscribed
(transactional) members are a no to marketing email, as in Mailchimp's export
(recognise.MAILCHIMP_KINDS): they keep their address key and subscribed=False, so the apply
heeds them (engine.OPTED_OUT) though they create no contact; so do cleaned (bounced) ones.
Members are de-duplicated against the batch's other sources like any CSV row. Staging is one
transaction that takes the batch first, exactly as for a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from bot.imports.addresses import InvalidEmail, email_key, normalize_email
from bot.imports.batches import (
    ReviewError,
    batch_keys,
    fail_source,
    lock_batch,
    record_counts,
)
from bot.imports.locales import normalize_locale
from bot.imports.recognise import MAILCHIMP_KINDS
from bot.imports.rows import REJECTED, Classifier, Staged, split_full_name
from bot.imports.staging import stage_rows, take_staging
from bot.mailchimp import api
from bot.mailchimp.accounts import DISCONNECTED, Stamp, stamp_in
from models import Database, ImportSource, SourceStatus

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")
SKIPPED_REASON = "{status} in Mailchimp"
# The statuses heeded as a no to marketing email: those that say the person wants none (the
# export's subscribed=False kinds), and cleaned (the address bounced: the same person from
# another file of the import, imported subscribed, was invited and bounced again, hurting the
# sender's reputation). Pending (unconfirmed) and archived ones say nothing of consent.
SAYS_NO = frozenset({"cleaned", *(kind for kind, file_kind in MAILCHIMP_KINDS.items()
                                  if file_kind.subscribed is False)})  # fmt: skip


def mailchimp_locale(language: str | None) -> str | None:
    """Mailchimp's `es_ES` -> `es-ES`; a bare `pt` is Brazilian; empty: the workspace default."""
    raw = (language or "").strip().replace("_", "-")
    if not raw:
        return None
    if raw.lower() == "pt":
        return "pt-BR"
    return normalize_locale(raw)


def member_rows(members: Iterable[dict[str, Any]], classifier: Classifier) -> Iterator[Staged]:
    for line, member in enumerate(members, start=1):
        first, last = _names(member)
        email = str(member.get("email_address") or "")
        status = str(member.get("status") or "unknown")
        if status == "subscribed":
            locale = mailchimp_locale(member.get("language"))
            yield classifier.contact(line, email, first, last, locale or "", "yes")
            continue
        classifier.tally.rows += 1
        classifier.tally.rejected += 1
        key = _key(email) if status in SAYS_NO else ""
        yield (line, email[:320], key, first[:200], last[:200], None, REJECTED,
               SKIPPED_REASON.format(status=status), False)  # fmt: skip


def _names(member: dict[str, Any]) -> tuple[str, str]:
    """(first, last): FNAME and LNAME, or from Mailchimp's own whole name where an audience
    renamed those tags (FIRSTNAME). The whole name is FNAME then LNAME in every script: split
    as a CJK whole-name column is, family name first, 悠斗 田中 gave first name 田中. With
    only one of the tags renamed, the other's value was taken and the first name dropped
    ("Hi bob," from the address): the whole name less the tag kept gives it."""
    merge = member.get("merge_fields") or {}
    first = " ".join(str(merge.get("FNAME") or "").split())
    last = " ".join(str(merge.get("LNAME") or "").split())
    full = " ".join(str(member.get("full_name") or "").split())
    if (first and last) or not full:
        return first, last
    if last and full.endswith(f" {last}"):
        return full[: -len(last)].strip(), last
    if first and full.startswith(f"{first} "):
        return first, full[len(first):].strip()
    if first or last:
        return first, last
    return split_full_name(full, given_first=True)


def _key(email: str) -> str:
    """The address's key, so an unsubscribe is matched to the person ("": not an address)."""
    try:
        return email_key(normalize_email(email))
    except InvalidEmail:
        return ""


class Disconnected(ReviewError):
    """The connection the members were read through is not the workspace's any more."""


async def stage_audience(db: Database, team_id: str, source: ImportSource,
                         members: Iterable[dict[str, Any]], read_from: Stamp | None = None
                         ) -> None:  # fmt: skip
    """Stage the members into the source, replacing whatever it staged before.

    `read_from`: the connection they were read through. Disconnected (or connected to
    another account: another client's audience, perhaps) since, the source fails and none
    of them is staged: nobody approves people of an account the workspace let go."""
    source_id = source.id or 0
    try:
        async with db.begin() as conn:
            await lock_batch(conn, team_id, source.batch_id)
            if read_from is not None and await stamp_in(conn, team_id) != read_from:
                raise Disconnected
            await take_staging(conn)
            keys = await batch_keys(conn, team_id, source.batch_id, source_id)
            classifier = Classifier(seen={hash(k) for k in keys})
            rows = member_rows(members, classifier)
            await stage_rows(conn, team_id=team_id, batch_id=source.batch_id,
                             source_id=source_id, rows=rows)  # fmt: skip
            if not await record_counts(conn, source, classifier.tally):
                raise ReviewError("not pending")
    except Disconnected:
        await fail_source(db, team_id, source_id, only_pending=True, error=DISCONNECTED)
    except ReviewError:
        await fail_source(db, team_id, source_id, only_pending=True,
                          error="The import was closed before this audience was read.")  # fmt: skip


async def read_audience(db: Database, team_id: str, source: ImportSource,
                        creds: api.Credentials, read_from: Stamp | None = None
                        ) -> None:  # fmt: skip
    """Fetch the audience's members and stage them (a failure is raised to the caller);
    `read_from`: the connection `creds` came from (see stage_audience)."""
    if source.status != SourceStatus.PENDING or not source.ref:
        return
    with await api.members(creds, source.ref) as members:
        await stage_audience(db, team_id, source, members, read_from)
