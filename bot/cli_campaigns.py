"""`referral-bot campaign ...` and `referral-bot advocates`: the campaign path without Slack.

Shell users are trusted admins. Targeting enrolls in the foreground and prints the counts;
the invites themselves are sent by a worker (`referral-bot worker`, or `serve`'s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from datetime import datetime
from typing import Any

from bot.audit import CLI
from bot.campaigns import service
from bot.campaigns.advocates import advocate_rows
from bot.campaigns.enroll import EnrollResult, run_enrollment
from bot.campaigns.invites import (
    email_unsent,
    queued_until_live,
    resend_campaign_uncertain,
    retry_campaign_sending,
    stop_remedy,
    uncertain_words,
    waiting_for_a_sender,
    waiting_pronoun,
    waiting_words,
)
from bot.campaigns.reports import unsent_while_off
from bot.cli_common import ask_first
from bot.jobs.here import running_here, shell_owner
from bot.jobs.queue import claim_by_key
from bot.notify import enqueue_enrollment_report_in
from bot.settings import Settings
from bot.terminal import shown
from bot.words import plural, quoted
from bot.workspaces import find_segment
from models import (
    Campaign,
    CampaignState,
    Database,
    Enrollment,
    EnrollmentStatus,
    Segment,
    SegmentRole,
)
from models.clock import utcnow

# `campaign target` and `live` ask first (or take --yes) before enrolling more contacts than
# this at once into a campaign that emails them: going live on All Customers queued an invite
# to each of 294,125 contacts without a word
ASK_OVER = 1_000
# An example sender, as `create --help` gives it
EXAMPLE_SENDER = '"Shop <hello@shop.example>"'


class CampaignCliError(Exception):
    """Reported like every CLI error: on stderr, or as {"error": ...} with --json."""


def add_parsers(sub: Any) -> None:
    camp = sub.add_parser("campaign", help="create, target and run referral campaigns")
    camp.add_argument("--team")
    actions = camp.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="a new campaign (a draft unless --live)")
    create.add_argument("name")
    create.add_argument("--store-url", required=True, help="where referral links lead")
    create.add_argument("--sender", default="", help='e.g. "Shop <hello@shop.example>"')
    create.add_argument("--offer", default="",
                        help='shown in the invite, e.g. "Give 10%%, get $10"')  # fmt: skip
    create.add_argument("--no-invite-email", action="store_true",
                        help="enroll without emailing (e.g. you invite from Klaviyo)")  # fmt: skip
    create.add_argument("--invite-delay-days", type=int, default=0)
    create.add_argument("--live", action="store_true", help="go live at once")
    create.add_argument("--json", action="store_true")

    edit = actions.add_parser("edit", help="change a campaign's settings")
    edit.add_argument("name")
    edit.add_argument("--rename", metavar="NEW_NAME")
    edit.add_argument("--store-url")
    edit.add_argument("--sender")
    edit.add_argument("--offer")
    edit.add_argument("--invite-email", choices=("on", "off"),
                      help="off: enroll without emailing (e.g. you invite from Klaviyo); "
                           "invites not sent yet are not sent")  # fmt: skip
    edit.add_argument("--invite-delay-days", type=int)
    edit.add_argument("--json", action="store_true")

    listing = actions.add_parser("list", help="campaigns with their targets and advocates")
    listing.add_argument("--json", action="store_true")

    for verb, text in (("target", "target a segment (a live campaign enrolls it now)"),
                       ("exclude", "never enroll a segment's contacts")):  # fmt: skip
        cmd = actions.add_parser(verb, help=text)
        cmd.add_argument("name")
        cmd.add_argument("--segment", required=True)
        cmd.add_argument("--json", action="store_true")
        if verb == "target":
            cmd.add_argument("--hold", action="store_true",
                             help="hold the invites for INVITE_HOLD_SECONDS first")  # fmt: skip
            _add_yes(cmd)
    for verb, text in (("live", "go live: enroll every target now"),
                       ("pause", "pause a live campaign: it enrolls nobody new, and its unsent "
                                 "invites wait until it goes live again"),
                       ("retry-sending", "send again the invites whose sending stopped "
                                         "(`campaign list` says why it stopped)"),
                       ("email-unsent", "send the invites the invite email being off left "
                                        "unsent (not if another tool invited them)"),
                       ("resend-uncertain", "send again the invites that may not have arrived "
                                            "(some people may get theirs twice)")):  # fmt: skip
        cmd = actions.add_parser(verb, help=text)
        cmd.add_argument("name")
        cmd.add_argument("--json", action="store_true")
        if verb == "live":
            _add_yes(cmd)

    for action in actions.choices.values():
        # SUPPRESS: `campaign --team T list` keeps the T given before the action too
        action.add_argument("--team", default=argparse.SUPPRESS)

    adv = sub.add_parser("advocates", help="a campaign's advocates with links and invite state")
    adv.add_argument("--campaign", required=True)
    adv.add_argument("--team")
    adv.add_argument("--json", action="store_true")


def _add_yes(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--yes", "-y", action="store_true",
                     help=f"don't ask before enrolling more than {ASK_OVER:,} contacts at once "
                          "into a campaign that emails them")  # fmt: skip


def enroll_json(result: EnrollResult) -> dict[str, Any]:
    return {"enrolled": result.enrolled, "already_advocates": result.already_advocates,
            "excluded": result.excluded, "invites_queued": result.invites_queued,
            "not_emailed": result.not_emailed}  # fmt: skip


def _enroll_text(result: EnrollResult, campaign: Campaign, *, hold: float = 0,
                 every_target: tuple[str, bool] | None = None) -> str:  # fmt: skip
    """What an enrollment of `campaign` run here did. `hold` (INVITE_HOLD_SECONDS, when
    `--hold` held the invites) and the campaign's invite delay say when they go (invites wait
    for the later of the two). `every_target` (the segment's name, and whether it was a
    target already) when `campaign target` ran an enrollment of all the campaign's targets
    that was waiting (service._pending_in: one an undo or a cut-short `live` queued): its
    counts are of them all, not of the segment's."""
    already = result.already_advocates
    counts = (f"({already:,} already {'was' if already == 1 else 'were'}, "
              f"{result.excluded:,} excluded)")  # fmt: skip
    enrolled = f"Enrolled {plural(result.enrolled, 'new advocate')}"
    if every_target is None:
        lines = [f"{enrolled} {counts}."]
    else:
        segment, was_a_target = every_target
        among = "among them" if was_a_target else "now among them"
        lines = [f"{enrolled} from every target of {quoted(campaign.name)}, {quoted(segment)} "
                 f"{among} {counts}: an enrollment of them all was waiting."]  # fmt: skip
    them = "it" if result.invites_queued == 1 else "them"
    delay = campaign.invite_delay_days
    if result.invites_queued and (delay or hold):
        # it said "queued: a worker sends them", as if now
        wait = f"due in {plural(delay, 'day')}" if delay else f"held for {_hold_words(hold)}"
        name = shlex.quote(campaign.name)
        lines.append(f"{plural(result.invites_queued, 'invite')} {wait}: a worker sends "
                     f"{them} then (`referral-bot advocates --campaign {name}` says when; "
                     f"`referral-bot campaign pause {name}` keeps {them} back).")  # fmt: skip
    elif result.invites_queued:  # "0 invites queued: a worker sends them" of none
        lines.append(f"{plural(result.invites_queued, 'invite')} queued: a worker sends "
                     f"{them} (`referral-bot worker`, or `serve`).")  # fmt: skip
    for reason, count in sorted(result.not_emailed.items()):
        lines.append(f"{count:,} not emailed: {reason}")
    return "\n".join(lines)


def _hold_words(seconds: float) -> str:
    """INVITE_HOLD_SECONDS in words: "5 minutes", "90 seconds"."""
    if seconds >= 120 and seconds % 60 == 0:
        return plural(int(seconds // 60), "minute")
    return plural(round(seconds), "second")


def _listing(args: argparse.Namespace, command: str) -> str:
    """The command that lists the names a refusal didn't find, in this workspace."""
    team = getattr(args, "team", None)
    return f"`referral-bot {command}" + (f" --team {shlex.quote(team)}`" if team else "`")


async def _segment(db: Database, team: str, name: str, args: argparse.Namespace) -> Segment:
    """The segment named, or a refusal that says where the names are, as `segments rename`,
    `delete` and `export` say (it said "No segment named 'Nope'." and no more)."""
    segment = await find_segment(db, team, name)
    if segment is None:
        raise CampaignCliError(f"No segment named {quoted(name)} in this workspace "
                               f"({_listing(args, 'segments')} lists them).")  # fmt: skip
    return segment


async def _find(db: Database, team: str, name: str, args: argparse.Namespace) -> Campaign:
    """The campaign named, or a refusal that says where the names are."""
    try:
        return await service.find_campaign(db, team, name)
    except service.CampaignError:
        raise CampaignCliError(f"No campaign named {quoted(name)} in this workspace "
                               f"({_listing(args, 'campaign list')} lists them).") from None


# The option of each field check_fields checks, as the shell's refusals name it (the form
# shows a refusal beside its field; here "It needs to start with https://" named nothing)
_OPTIONS = {"store_url": "--store-url", "sender": "--sender", "offer": "--offer",
            "invite_delay_days": "--invite-delay-days"}  # fmt: skip


def _check(name_option: str | None, **fields: Any) -> None:
    """Refuse the fields service.check_fields refuses, each problem after the option it is
    about ("--invite-delay-days: between 0 (at once) and 365 days."); a new campaign's NAME
    (`name_option` None) is the command's argument, said as it is."""
    problems = service.check_fields(**fields)
    said = []
    for field, why in problems.items():
        option = name_option if field == "name" else _OPTIONS[field]
        if option is None:
            said.append(why)
        else:  # "It needs…" -> "--store-url: it needs…" (an acronym, "URL…", kept)
            first = why.split(" ", 1)[0]
            lower = len(first) < 2 or not first.isupper()
            said.append(f"{option}: {why[:1].lower() + why[1:] if lower else why}")
    if said:  # a line each: a store URL's ends with the URL, no full stop to part them
        raise CampaignCliError("\n".join(said))


def _warn_sender(campaign: Campaign, settings: Settings) -> None:
    """On stderr, after what the command did: invites will go out from the default address
    (the bot's domain; an IP address or localhost is no mail domain at all). Only said: the
    default works for trying things out (invites written as .eml files)."""
    how = (f"referral-bot campaign edit {shlex.quote(campaign.name)} --sender "
           f"{EXAMPLE_SENDER}")
    warning = service.sender_warning(campaign, settings.public_base, how)
    if warning:
        print(shown(warning), file=sys.stderr)  # the name may hold escape characters


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.command == "advocates":
            return await _advocates(db, team, settings, args)
        return await _campaign(db, team, settings, args)
    except service.CampaignError as exc:
        raise CampaignCliError(str(exc)) from None


async def _campaign(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    command = args.campaign_command
    out: dict[str, Any]
    if command == "create":
        _check(None, name=args.name, store_url=args.store_url, sender=args.sender,
               offer=args.offer, invite_delay_days=args.invite_delay_days)  # fmt: skip
        campaign = await service.create_campaign(
            db, team, args.name, store_url=args.store_url, sender=args.sender, offer=args.offer,
            invite_email=not args.no_invite_email, invite_delay_days=args.invite_delay_days,
            created_by=CLI,
        )  # fmt: skip
        if args.live:
            await service.set_state(db, team, campaign.id or 0, CampaignState.LIVE,
                                    requested_by=CLI, hold=False)  # fmt: skip
        out = {"id": campaign.id, "name": campaign.name,
               "state": CampaignState.LIVE if args.live else campaign.state}  # fmt: skip
        text = f"Campaign {quoted(campaign.name)} created ({out['state']})."
        print(json.dumps(out) if args.json else text)
        _warn_sender(campaign, settings)
        return 0
    elif command == "list":
        waiting = await waiting_for_a_sender(db, team, settings.job_lease_seconds)
        rows = [_summary(s, waiting) for s in await service.list_campaigns(db, team)]
        if args.json:
            print(json.dumps(rows))
            return 0
        for row in rows:
            print(f"{row['name']}  [{row['state']}]  invite email {_invite_words(row)}  "
                  f"targets: {', '.join(row['targets']) or '-'}  excluded: "
                  f"{', '.join(row['excluded']) or '-'}  advocates: {row['advocates']:,}  "
                  f"invites sent: {row['invites_sent']:,}"
                  + (f"  failed: {row['invites_failed']:,}" if row["invites_failed"] else ""))
            if count := row["invites_uncertain"]:
                them, name = waiting_pronoun(count), shlex.quote(row["name"])
                how = (f"referral-bot campaign resend-uncertain {name} sends {them} again, and "
                       "some people may get theirs twice" if row["invite_email"] else
                       f"the invite email is off: turn it on to resend {them} (referral-bot "
                       f"campaign edit {name} --invite-email on)")  # fmt: skip
                print(f"  {uncertain_words(count)}: {how}")
            if row["sending_stopped"]:
                retry = f"referral-bot campaign retry-sending {shlex.quote(row['name'])}"
                fix = {"retry": "", "wait": "the mail server turned the bot away: check the "
                       "provider's sending limits if it keeps happening; then: ",
                       "settings": "fix the mail settings, then: ",
                       "workers": "read the workers' log if it keeps happening; then: "
                       }[stop_remedy(row["sending_stopped"])]  # fmt: skip
                print(f"  sending stopped: {row['sending_stopped']} ({fix}{retry})")
            if row["unsent_while_off"]:
                print(f"  {plural(row['unsent_while_off'], 'invite')} went unsent while the "
                      "invite email was off (referral-bot campaign email-unsent "
                      f"{shlex.quote(row['name'])})")  # fmt: skip
            if row["invites_waiting_for_worker"]:
                print(_waiting_text(row["invites_waiting_for_worker"]))
        if not rows:
            print("No campaigns yet: referral-bot campaign create NAME --store-url URL")
        return 0
    else:
        campaign = await _find(db, team, args.name, args)
        cid = campaign.id or 0
        enrollment: int | None = None
        paused_already = False
        went_live = False
        retargeted: service.Targeting | None = None
        if command == "target":
            segment = await _segment(db, team, args.segment, args)
            if campaign.state == CampaignState.LIVE and not args.yes:
                await _ask_first(db, team, campaign, segment)
            retargeted = await service.targeting(db, team, cid, segment.id or 0,
                                                 requested_by=CLI, hold=args.hold)  # fmt: skip
            enrollment = retargeted.enrollment
        elif command == "exclude":
            return await _exclude(db, team, campaign, args)
        elif command == "edit":
            return await _edit(db, team, campaign, settings, args)
        elif command == "email-unsent":
            done = await email_unsent(db, team, cid, actor=CLI)
            if not done.invite_email:
                raise CampaignCliError(
                    f"The invite email of {quoted(campaign.name)} is off: nobody was emailed. "
                    f"Turn it on first (referral-bot campaign edit {shlex.quote(campaign.name)} "
                    "--invite-email on).")  # fmt: skip
            out = {"campaign": campaign.name, "queued": done.count,
                   "invited_before": done.emailed_before,
                   "no_longer_subscribed": done.unsubscribed}  # fmt: skip
            sent = (f"Sending {plural(done.count, 'invite')} of {quoted(campaign.name)}: a "
                    "worker sends them (`referral-bot jobs` shows it)." if done.live else
                    queued_until_live(f"{plural(done.count, 'invite')} of "
                                      f"{quoted(campaign.name)}", done.count == 1,
                                      quoted(campaign.name), _go_live(campaign)))  # fmt: skip
            text = (f"{sent}{done.not_again()}" if done.count else
                    done.none_sent(quoted(campaign.name)) or
                    f"No invite of {quoted(campaign.name)} is left unsent by the invite email "
                    "being off.")  # fmt: skip
            print(json.dumps(out) if args.json else text)
            return 0
        elif command == "retry-sending":
            return await _retry_sending(db, team, campaign, args)
        elif command == "resend-uncertain":
            return await _resend_uncertain(db, team, campaign, args)
        elif command == "pause":
            # the state as the pause's own transaction found it (not as read before it)
            paused_already = await service.pause(db, team, cid,
                                                 requested_by=CLI) == CampaignState.PAUSED
        else:
            if campaign.state != CampaignState.LIVE and not args.yes:
                await _ask_first(db, team, campaign, None)
            change = await service.change_state(db, team, cid, CampaignState.LIVE,
                                                requested_by=CLI, hold=False)  # fmt: skip
            # put live by this run, as its transaction found the campaign (not as read
            # before it): the sender warning is said then, not on every re-run
            enrollment, went_live = change.enrollment, change.went_live
        out = {"campaign": campaign.name}
        if command in ("live", "target"):  # the same keys whichever way it went: what this
            # command enrolled (none: live already, nothing targeted, or a worker's to do)
            out.update(enroll_json(EnrollResult(0, 0, 0, 0, {})), enrolling=None)
            if command == "target":  # the counts are of every target, not the segment's
                out["of_every_target"] = False
        if retargeted is not None:
            out.update(segment=segment.name,
                       previous_role=str(retargeted.was) if retargeted.was else None)
        cancelled = False
        was_a_target = retargeted is not None and retargeted.was == SegmentRole.TARGET
        if enrollment is not None:
            hold = settings.invite_hold_seconds if getattr(args, "hold", False) else 0
            if command == "live":  # the threads' enrollments it resumed first, with their hold
                await _resumed_here(db, team, cid, settings)
            try:
                ran = await _enroll_here(db, team, enrollment, hold,
                                         settings.job_lease_seconds)  # fmt: skip
            except _EnrollmentCancelled:
                cancelled = True
                text = _cancelled_text(campaign, args.segment if command == "target" else None)
            except BaseException:  # Ctrl-C, the database gone or refusing: live all the
                # same, and no later run (nor Slack's Go live) puts it live to say it
                if went_live:
                    _warn_sender(campaign, settings)
                raise
            else:
                if ran is None:
                    out["enrolling"] = "a worker"
                    text = (f"A worker is enrolling the contacts of {quoted(campaign.name)} now: "
                            "`referral-bot jobs` follows it.")  # fmt: skip
                else:
                    result, every = ran[0], command == "target" and ran[1].segment_id is None
                    out.update(enroll_json(result))
                    if every:
                        out["of_every_target"] = True
                    text = _enroll_text(result, campaign, hold=hold,
                                        every_target=(segment.name, was_a_target)
                                        if every else None)  # fmt: skip
        elif command == "target":
            text = _target_waits_text(campaign, args.segment, already=was_a_target)
        elif command == "live":
            text = await _live_text(db, team, campaign, already=not went_live)
        else:
            text = (f"Campaign {quoted(campaign.name)} was paused already." if paused_already else
                    f"Campaign {quoted(campaign.name)} is paused.")  # fmt: skip
        if retargeted is not None and retargeted.was == SegmentRole.EXCLUDE:
            text = _was_excluded_text(campaign, segment, text)
        if cancelled:  # a failure as `import` and `undo` stopped by `jobs cancel` are: exit 1
            if went_live:  # live all the same: the run that enrolls them won't say it again
                _warn_sender(campaign, settings)
            raise CampaignCliError(text)
    print(json.dumps(out) if getattr(args, "json", False) else text)
    if went_live:  # what its invites will come from, as Slack's Go live says it: only when
        # this run put it live (a second run, or a script running it again, said it each time)
        _warn_sender(campaign, settings)
    return 0


async def _ask_first(db: Database, team: str, campaign: Campaign, segment: Segment | None) -> None:
    """Before enrolling more than ASK_OVER contacts at once into a campaign that emails them
    (targeting a segment of a live campaign, or going live: `segment` None): on a terminal
    "[y/N]", else a refusal that says to add --yes, as `segments delete` does. Nothing is
    asked when the invite email is off (nobody is emailed) or few would be enrolled."""
    if not campaign.invite_email:
        return
    seg_id = None if segment is None else segment.id or 0
    found = await service.audience(db, team, campaign.id or 0, seg_id)
    if found.enrolled <= ASK_OVER:
        return
    name = quoted(campaign.name)
    doing = "going live" if segment is None else f"targeting {quoted(segment.name)}"
    later = (f", {plural(campaign.invite_delay_days, 'day')} later"
             if campaign.invite_delay_days else "")
    would = (f"{doing} would enroll {plural(found.enrolled, 'contact')} in {name} at once, and "
             f"a worker would email an invite to the {found.subscribed:,} of them who are "
             f"subscribed{later}")  # fmt: skip
    question = (f"Put {name} live?" if segment is None else
                f"Target {quoted(segment.name)} with {name}?")  # fmt: skip
    stays = "a draft" if campaign.state == CampaignState.DRAFT else "paused"
    ask_first(would[:1].upper() + would[1:] + ".", question, unasked=f"Nothing changed: {would}",
              add_yes_to="do it", refusal=CampaignCliError,
              declined=(f"Nothing changed: nobody was enrolled in {name}." if segment
                        else f"Nothing changed: {name} stays {stays}."))  # fmt: skip


def _go_live(campaign: Campaign) -> str:
    """The command that puts `campaign` live again."""
    return f"referral-bot campaign live {shlex.quote(campaign.name)}"


async def _retry_sending(db: Database, team: str, campaign: Campaign,
                         args: argparse.Namespace) -> int:  # fmt: skip
    """`campaign retry-sending`: a send run for each enrollment whose sending stopped. Run
    again before that run ended, it found nothing stopped and said "nothing to retry" of a
    retry on its way: it says the retry is queued (or running, and on which worker)."""
    retried = await retry_campaign_sending(db, team, campaign.id or 0)
    restarted = retried.enrollments
    # this one's runs, or those of a retry asked for before that haven't ended
    waiting = await service.queued_retries(db, team, campaign.id or 0)
    out = {"campaign": campaign.name, "restarted": len(restarted),
           "retry_jobs": [r.job_id for r in waiting]}  # fmt: skip
    if restarted and not retried.live:
        text = queued_until_live(f"The invites of {quoted(campaign.name)}", False,
                                 quoted(campaign.name), _go_live(campaign))  # fmt: skip
    elif restarted:
        text = (f"Sending the invites of {quoted(campaign.name)} again: a worker sends them "
                "(`referral-bot jobs` shows it).")  # fmt: skip
    elif waiting:
        how = "under way" if any(r.state == "running" for r in waiting) else "queued"
        text = (f"A retry of sending the invites of {quoted(campaign.name)} is {how} already "
                f"({'; '.join(_retry_words(r) for r in waiting)}): a worker sends them "
                "(`referral-bot jobs` shows it).")  # fmt: skip
    else:
        text = f"No invites of {quoted(campaign.name)} stopped sending: nothing to retry."
    print(json.dumps(out) if args.json else text)
    return 0


async def _resend_uncertain(db: Database, team: str, campaign: Campaign,
                            args: argparse.Namespace) -> int:  # fmt: skip
    """`campaign resend-uncertain`: an enrollment made here or by Go live has no Slack
    report to offer *Resend uncertain*, and its invites that may not have arrived had no
    way on."""
    done = await resend_campaign_uncertain(db, team, campaign.id or 0, actor=CLI)
    name = shlex.quote(campaign.name)
    if not done.invite_email:
        raise CampaignCliError(done.words(quoted(campaign.name), retry="", turn_on=(
            f"Turn it on first (referral-bot campaign edit {name} --invite-email on)")))
    out = {"campaign": campaign.name, "queued": done.count,
           "waiting_for_retry": done.waiting_for_retry}  # fmt: skip
    text = done.words(quoted(campaign.name), retry=f"referral-bot campaign retry-sending {name}",
                      turn_on="", sent_by=" (`referral-bot jobs` shows it)",
                      go_live=_go_live(campaign))  # fmt: skip
    print(json.dumps(out) if args.json else text)
    return 0


def _retry_words(retry: service.QueuedRetry) -> str:
    """"job 12, queued at 2026-12-06 10:02 UTC", or "job 12, run by worker host:41:a1b2c3"
    (its lease owner's worker, as `referral-bot jobs` knows it)."""
    if retry.state == "running" and retry.worker:
        return f"job {retry.job_id}, run by worker {retry.worker}"
    return f"job {retry.job_id}, queued at {retry.queued_at:%Y-%m-%d %H:%M} UTC"


async def _live_text(db: Database, team: str, campaign: Campaign, *, already: bool) -> str:
    """What `campaign live` says when it enrolled nobody: live already with every target
    enrolled, or no segment targeted yet, which says how to target one (it said "Campaign
    'Spring': live done."). `already`: it was live before this run (said so, as a second
    `pause` says "was paused already")."""
    text = (f"Campaign {quoted(campaign.name)} was live already." if already else
            f"Campaign {quoted(campaign.name)} is live.")  # fmt: skip
    targets = [t for t in await service.targets_of(db, team, campaign.id or 0)
               if t.role == SegmentRole.TARGET]  # fmt: skip
    if targets:
        return text
    return (f"{text} No segment is targeted yet, so nobody was enrolled: referral-bot campaign "
            f"target {shlex.quote(campaign.name)} --segment NAME enrolls a segment's contacts.")


def _target_waits_text(campaign: Campaign, segment: str, *, already: bool = False) -> str:
    """What `campaign target` says when the campaign isn't live: its state is as read before
    the targeting (service.targeting doesn't return the one it saw); one read live then was
    paused since (a live campaign enrolls at once, and goes back to paused only). `already`:
    it was a target before (it said "is now a target" each time, as if new)."""
    state = CampaignState.DRAFT if campaign.state == CampaignState.DRAFT else CampaignState.PAUSED
    now = "was already" if already else "is now"
    return (f"{quoted(segment)} {now} a target of {quoted(campaign.name)}, a {state} campaign: "
            f"its contacts {service.enrolled_when(state)} (referral-bot campaign live "
            f"{shlex.quote(campaign.name)}).")


async def _exclude(db: Database, team: str, campaign: Campaign,
                   args: argparse.Namespace) -> int:  # fmt: skip
    """`campaign exclude`: what it did, and what the segment was before (_excluded_text)."""
    segment = await _segment(db, team, args.segment, args)
    done = await service.exclude(db, team, campaign.id or 0, segment.id or 0, requested_by=CLI)
    out = {"campaign": campaign.name, "segment": segment.name,
           "previous_role": str(done.was) if done.was else None,
           "advocates_staying": done.advocates, "invites_cancelled": done.cancelled}  # fmt: skip
    print(json.dumps(out) if args.json else _excluded_text(campaign, segment, done))
    return 0


def _excluded_text(campaign: Campaign, segment: Segment, done: service.Exclusion) -> str:
    """What `campaign exclude` did. A segment the campaign targeted is a target no more: that
    is said first, with how to target it again, as nothing else would show it (there is no
    untargeting: excluding is how a segment stops being a target)."""
    seg, name = quoted(segment.name), quoted(campaign.name)
    first = {SegmentRole.TARGET: f"{seg} was a target of {name}; it is now excluded instead: "
                                 "no contact of it is enrolled, even one in another target.",
             SegmentRole.EXCLUDE: f"{seg} was already excluded from {name}.",
             None: f"{seg} is now excluded from {name}: its contacts are never enrolled."}
    lines = [first[done.was]]
    if done.advocates:
        lines.append(f"{plural(done.advocates, 'contact')} of it "
                     + ("is an advocate already and stays one" if done.advocates == 1 else
                        "are advocates already and stay advocates") + ", links and all.")
    if done.cancelled:
        lines.append(f"{plural(done.cancelled, 'waiting invite')} to its contacts "
                     f"{'was' if done.cancelled == 1 else 'were'} cancelled.")  # fmt: skip
    if done.was == SegmentRole.TARGET:
        lines.append(f"To target it again: referral-bot campaign target "
                     f"{shlex.quote(campaign.name)} --segment {shlex.quote(segment.name)}")
    return "\n".join(lines)


def _was_excluded_text(campaign: Campaign, segment: Segment, done: str) -> str:
    """`campaign target` of a segment the campaign excluded: someone left its contacts out on
    purpose, and targeting includes them without asking in so many words (the mirror of
    _excluded_text). That is said first, what was `done` next, then how to exclude it again
    (its new advocates stay advocates)."""
    return "\n".join([
        f"{quoted(segment.name)} was excluded from {quoted(campaign.name)}; it is now a target "
        "instead.",
        done, f"To exclude it again: referral-bot campaign exclude {shlex.quote(campaign.name)} "
              f"--segment {shlex.quote(segment.name)}"])  # fmt: skip


_EDITS = {"rename": "name", "store_url": "store_url", "sender": "sender", "offer": "offer",
          "invite_delay_days": "invite_delay_days"}  # fmt: skip


async def _edit(db: Database, team: str, campaign: Campaign, settings: Settings,
                args: argparse.Namespace) -> int:  # fmt: skip
    """`campaign edit`: the settings given, changed in one save; turning the invite email on
    says how many invites its being off left unsent, and how to send them."""
    fields: dict[str, Any] = {field: getattr(args, arg) for arg, field in _EDITS.items()
                              if getattr(args, arg) is not None}  # fmt: skip
    _check("--rename", **fields)
    if args.invite_email is not None:
        fields["invite_email"] = args.invite_email == "on"
    if not fields:
        raise CampaignCliError("Nothing to change: give --rename, --store-url, --sender, "
                               "--offer, --invite-email or --invite-delay-days.")  # fmt: skip
    saved = await service.update_campaign(db, team, campaign.id or 0, actor=CLI, **fields)
    unsent = await unsent_while_off(db, team, saved.id or 0) if saved.invite_email else 0
    out = {"campaign": saved.name, "invite_email": saved.invite_email,
           "invite_delay_days": saved.invite_delay_days, "unsent_while_off": unsent}  # fmt: skip
    text = f"Campaign {quoted(saved.name)} saved (invite email {_invite_words(out)})."
    if unsent and args.invite_email == "on":  # said when it is turned on, not on any edit
        # (a new store URL repeated it); `campaign list` and --json keep telling it
        text += (f"\n{plural(unsent, 'invite')} went unsent while the invite email was off: "
                 f"`referral-bot campaign email-unsent {shlex.quote(saved.name)}` sends them "
                 "(not if another tool, a Klaviyo flow say, invited those people).")
    print(json.dumps(out) if args.json else text)
    _warn_sender(saved, settings)
    return 0


async def _enroll_here(db: Database, team: str, enrollment: int, hold_seconds: float,
                       lease_seconds: float, *, key: str | None = None,
                       ) -> tuple[EnrollResult, Enrollment] | None:  # fmt: skip
    """Run the enrollment's job (`key`: its own, unless another) in this process
    (bot.jobs.here): cut short, a worker or the next `campaign live` finishes it. What it
    did, and the enrollment as it ended; None when a worker runs it already."""
    owner = shell_owner()
    key = key or service.enrollment_job_key(enrollment)
    job = await claim_by_key(db, team, key, owner, lease_seconds)
    if job is None or job.id is None:
        return None
    async with running_here(db, team, job.id, owner, lease_seconds):
        # its job named: a `jobs cancel` of it from another shell stops the run, as it stops
        # a worker's (without it the run enrolled everyone and queued their invites)
        result = await run_enrollment(db, team, enrollment, hold_seconds=hold_seconds,
                                      job_id=job.id)  # fmt: skip
    ran = await service.get_enrollment(db, team, enrollment)
    if ran.status in (EnrollmentStatus.QUEUED, EnrollmentStatus.RUNNING):
        raise _EnrollmentCancelled  # the run found its job cancelled: it enrolled nobody
    return result, ran


async def _resumed_here(db: Database, team: str, campaign_id: int, settings: Settings) -> None:
    """Run here the thread enrollments going live resumed (service._resume_not_live_in),
    before going live's own: run first by this shell, that took their contacts without the
    hold, and their threads said "already enrolled". A worker's already under way, or one
    cancelled, is left as it is; each thread's report is queued for serve's worker to draw."""
    for enrollment_id, key in await service.resumed_enrollments(db, team, campaign_id):
        with contextlib.suppress(_EnrollmentCancelled):  # its thread says so, as a worker's
            await _enroll_here(db, team, enrollment_id, settings.invite_hold_seconds,
                               settings.job_lease_seconds, key=key)  # fmt: skip
        async with db.begin() as conn:
            await enqueue_enrollment_report_in(conn, team, enrollment_id)


class _EnrollmentCancelled(Exception):
    """The shell's enrollment found its job cancelled (`jobs cancel`) and enrolled nobody."""


def _cancelled_text(campaign: Campaign, segment: str | None) -> str:
    """What `campaign live` (`target`, naming the `segment`) says when `jobs cancel` stopped
    its enrollment: the campaign is live (the segment a target) all the same, and the
    enrollment waits for the same command, which queues its job again and runs it
    (service._pending_in)."""
    name = shlex.quote(campaign.name)
    if segment is not None:
        done, who = f"{quoted(segment)} is a target of {quoted(campaign.name)}", "its contacts"
        again = f"referral-bot campaign target {name} --segment {shlex.quote(segment)}"
    else:
        done, who = f"Campaign {quoted(campaign.name)} is live", "its targets"
        again = f"referral-bot campaign live {name}"
    return (f"{done}, but the job enrolling {who} was cancelled (`referral-bot jobs cancel`) "
            f"before it enrolled anyone. To enroll them: {again}")


def _invite_words(row: dict[str, Any]) -> str:
    """'off', 'on' (at once) or 'on after 3 days': a delayed campaign's invites wait."""
    days = int(row["invite_delay_days"])
    if not row["invite_email"]:
        return "off"
    return f"on after {plural(days, 'day')}" if days else "on"


def _summary(s: service.CampaignSummary, waiting: dict[int, int]) -> dict[str, Any]:
    """A campaign as `campaign list` gives it; `waiting`: its invites due that no running
    worker can send, by campaign id (invites.waiting_for_a_sender)."""
    c = s.campaign
    return {"id": c.id, "name": c.name, "state": c.state, "invite_email": c.invite_email,
            "invite_delay_days": c.invite_delay_days, "store_url": c.store_url,
            "targets": s.targets, "excluded": s.excluded, "advocates": s.advocates,
            "invites_sent": s.invites_sent, "invites_failed": s.invites_failed,
            "invites_uncertain": s.invites_uncertain,
            "sending_stopped": s.stopped[-1][1] if s.stopped else None,
            "unsent_while_off": s.unsent_while_off,
            "invites_waiting_for_worker": waiting.get(c.id or 0, 0)}  # fmt: skip


def _waiting_text(count: int) -> str:
    """The list's line under a campaign whose due invites no running worker can send: their
    send jobs wait queued (`referral-bot jobs` says so of each), and nothing said why here.
    Past the count (invites.WAITING_COUNTED) it says "more than 1,000", as Home does."""
    from bot.campaigns.jobs import SEND_NEEDS  # the job handlers: only when it is said

    return (f"  {waiting_words(count)}, but no running worker can send "
            f"{waiting_pronoun(count)}: {SEND_NEEDS} (`referral-bot jobs` shows the send jobs "
            "waiting)")


async def _advocates(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    campaign = await _find(db, team, args.campaign, args)
    rows = [row async for row in advocate_rows(db, team, campaign.id or 0, settings.public_base)]
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        # "unsubscribed" only for who did (`contacts` says "not subscribed" of the others)
        consent = ("" if row["subscribed"] else "  (unsubscribed)" if row["unsubscribed"]
                   else "  (not subscribed)")  # fmt: skip
        if consent.strip(" ()") == row["invite_reason"]:  # "not_emailed (not subscribed)"
            consent = ""  # said once, not twice
        invite = row["invite"]
        if row["invite_reason"]:  # why it failed, or why nobody emailed them
            invite += f" ({row['invite_reason']})"
        elif row["invite_due"] and (due := datetime.fromisoformat(row["invite_due"])) > utcnow():
            invite += f" (due {due:%Y-%m-%d %H:%M} UTC)"  # held, delayed or retried later
        if row["fell_back_to"] and row["invite"] == "sent":  # a failed one's reason says all
            wanted = f" ({row['locale']})" if row["locale"] else ""
            invite += f" in {row['fell_back_to']}: no template in their language{wanted}"
        print(f"{row['email']}  {row['link']}  {invite}  clicks {row['clicks']}{consent}")
    if not rows:
        print(f"No advocates in {quoted(campaign.name)} yet.")
    return 0
