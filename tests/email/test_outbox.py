"""The outbox directory: one parseable .eml per Message-ID, written atomically."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.email import OutboxDirSender, SendStatus
from bot.email.send import outbox_file_name
from tests.email.invites import make_message


async def test_each_message_becomes_a_parseable_eml_file(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    first, second = make_message(1), make_message(2, first_name="悠斗", locale="ja")
    async with OutboxDirSender(outbox) as sender:
        results = [await sender.send(first), await sender.send(second)]

    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    files = sorted(outbox.iterdir())
    assert [f.name for f in files] == sorted(
        outbox_file_name(str(m["Message-ID"])) for m in (first, second)
    )
    for message in (first, second):
        path = outbox / outbox_file_name(str(message["Message-ID"]))
        back = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(back, EmailMessage)
        assert back["Message-ID"] == message["Message-ID"]
        assert back["Subject"] == message["Subject"]
        assert back["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "悠斗" in str(
        email.message_from_bytes(
            (outbox / outbox_file_name(str(second["Message-ID"]))).read_bytes(),
            policy=email.policy.default,
        )["Subject"]
    )


async def test_writing_the_same_message_twice_leaves_one_file(tmp_path: Path) -> None:
    async with OutboxDirSender(tmp_path) as sender:
        await sender.send(make_message(7))
        await sender.send(make_message(7))  # rebuilt: new Date, same Message-ID
    assert len(list(tmp_path.iterdir())) == 1  # and no temp file left behind


async def test_an_odd_message_id_stays_inside_the_directory(tmp_path: Path) -> None:
    message = make_message(1)
    message.replace_header("Message-ID", "<../../etc/passwd@x>")
    other = make_message(2)
    other.replace_header("Message-ID", "<.._.._etc_passwd@x>")
    async with OutboxDirSender(tmp_path / "out") as sender:
        await sender.send(message)
        await sender.send(other)
    names = [path.name for path in (tmp_path / "out").iterdir()]
    assert len(names) == 2 and all("/" not in name and not name.startswith(".") for name in names)
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]


async def test_a_message_without_message_id_is_refused(tmp_path: Path) -> None:
    message = make_message(1)
    del message["Message-ID"]
    with pytest.raises(ValueError, match="Message-ID"):
        await OutboxDirSender(tmp_path).send(message)


@pytest.mark.parametrize(("to_email", "written"), [
    ("ana@bücher.de", b"To: ana@xn--bcher-kva.de"),
    ("josé@example.org", "To: josé@example.org".encode()),
])  # fmt: skip
async def test_an_internationalised_recipient_is_written_as_an_address(
    tmp_path: Path, to_email: str, written: bytes,
) -> None:  # fmt: skip
    """The .eml said `To: ana@=?utf-8?q?b=C3=BCcher?=.de`: encoded words inside an address
    are no address, so the file could not be handed to another mailer."""
    async with OutboxDirSender(tmp_path) as sender:
        await sender.send(make_message(0, to_email=to_email))
    (eml,) = tmp_path.glob("*.eml")
    assert [line for line in eml.read_bytes().split(b"\r\n") if line.startswith(b"To:")
            ] == [written]  # fmt: skip


async def test_a_message_being_written_is_never_read_as_an_eml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temp file a message is written to before its rename was `.tmp-….eml`: whatever
    read the outbox with `glob("*.eml")` (pathlib's `*` takes dot files) took a message half
    written. Looked at while the file is being made durable (its fsync, before the rename):
    only whole messages end in `.eml`."""
    import os

    seen: list[list[str]] = []
    fsync = os.fsync

    def looking(fd: int) -> None:
        seen.append(sorted(path.name for path in tmp_path.glob("*.eml")))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", looking)
    async with OutboxDirSender(tmp_path) as sender:
        first, second = make_message(1), make_message(2)
        await sender.send(first)
        await sender.send(second)
    names = [outbox_file_name(str(m["Message-ID"])) for m in (first, second)]
    assert seen and all(set(found) <= set(names) for found in seen), seen
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names)


async def test_temp_files_a_killed_writer_left_are_removed_when_the_outbox_opens(
    tmp_path: Path,
) -> None:
    """A writer killed between its temp file and the rename (SIGKILL) left the temp file for
    good, named `.tmp-….eml` then: it read as a message. The next run removes the writer's
    own temp files once they are old enough not to be another process's write in progress,
    and nothing else."""
    import os
    import time

    left = {".tmp-k1ll3d_a.eml": b"From: half", ".tmp-k1ll3d_b.tmp": b"From: half"}
    kept = {".tmp-wr1t1ng_.tmp": b"From: in progress", "notes.tmp": b"mine",
            ".tmp-k1ll3d_c.eml.bak": b"mine"}  # fmt: skip
    old = time.time() - 3600  # an hour: no write in progress takes that long
    for name, data in {**left, **kept}.items():
        (tmp_path / name).write_bytes(data)
        if name != ".tmp-wr1t1ng_.tmp":
            os.utime(tmp_path / name, (old, old))
    message = make_message(3)
    async with OutboxDirSender(tmp_path) as sender:
        await sender.send(message)
    assert [path.name for path in tmp_path.glob("*.eml")] == [
        outbox_file_name(str(message["Message-ID"]))]  # fmt: skip
    assert {path.name for path in tmp_path.iterdir()} == {
        outbox_file_name(str(message["Message-ID"])), *kept}  # fmt: skip
