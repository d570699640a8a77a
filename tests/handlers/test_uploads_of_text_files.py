""".txt files shared in a channel: offered for import only when they are a contact list."""

from __future__ import annotations

import json

from handlers.ids import Action
from tests.fakes.slack_requests import file_shared_event
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_import_flow import CSV, _form, _open_modal, _review
from tests.handlers.test_uploads_and_limits import _new_segment, _offers

NOTES = (b"Team sync 2024-05-01\n"
         b"Attendees: ann@example.com, raj@example.org\n"
         b"\n"
         b"- the spring campaign goes live on Monday\n"
         b"- Raj sends the store URL to ann@example.com\n")  # fmt: skip
PREVIEW_LINES = 5  # what Slack's files.info previews of a text file


def _add_text(app: Harness, file_id: str, name: str, content: bytes,
              channels: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """A .txt file (Slack's filetype "text") whose files.info carries the preview Slack gives
    a text file: its first lines, and how many more there are."""
    file = app.slack.add_file(file_id, name, content, filetype="text", mimetype="text/plain",
                              channels=channels)  # fmt: skip
    lines = content.decode().splitlines()
    app.slack.files[file_id].update(preview="\n".join(lines[:PREVIEW_LINES]), lines=len(lines),
                                    lines_more=max(0, len(lines) - PREVIEW_LINES),
                                    preview_is_truncated=False)  # fmt: skip
    return file


async def test_meeting_notes_shared_as_a_txt_are_not_offered(app: Harness) -> None:
    """Every .txt shared where the bot is got "Import these contacts?": meeting notes too,
    noise in a busy channel. Nothing is downloaded to tell."""
    _add_text(app, "F0002", "notes.txt", NOTES, channels=("C0001",))
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    assert app.slack.calls_to("files.info")  # the offer looked at it
    assert not app.slack.calls_to("chat.postMessage"), app.slack.messages
    assert not app.slack.downloads


async def test_a_contact_list_shared_as_a_txt_is_still_offered_and_imported(
        app: Harness) -> None:  # fmt: skip
    _add_text(app, "F0002", "contacts.txt", CSV, channels=("C0001",))
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    (offer,) = _offers(app, "contacts.txt")
    assert not app.slack.downloads  # told from files.info alone
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer["ts"],
                                    state_values=_new_segment("Spring"))  # fmt: skip
    await app.settle()
    review = await _review(app)
    assert "*contacts.txt* (CSV file)\\n:white_check_mark: 2 valid" in json.dumps(
        review["blocks"])


async def test_a_txt_chosen_in_the_import_form_is_imported_whatever_its_preview(
        app: Harness) -> None:  # fmt: skip
    """The form's files are the person's choice: a report whose preview shows only its title
    lines (the header comes below them) is read as before."""
    titled = b"Customer export\nShop: Acme\nBy: ops\nFrom: May\nTo: June\n" + CSV
    file = _add_text(app, "F0001", "export.txt", titled)
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    review = await _review(app)
    assert "*export.txt* (CSV file)\\n:white_check_mark: 2 valid" in json.dumps(review["blocks"])


async def test_a_headerless_txt_list_with_a_row_lacking_its_address_is_offered(
        app: Harness) -> None:  # fmt: skip
    """Every previewed row had to hold an address: a list whose one customer has none (the
    import skips that row, and says why) brought no offer at all."""
    rows = b"Ann,ann@example.com\nBob,\nCy,cy@example.com\nDee,dee@example.com\n"
    _add_text(app, "F0002", "customers.txt", rows, channels=("C0001",))
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    assert _offers(app, "customers.txt")
