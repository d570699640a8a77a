"""Host names as browsers look them up.

A store URL is checked when a campaign is saved and sent on by every referral link's
redirect: both must read its host the same way. The check read it with the standard
library's IDNA 2003 codec, which drops a soft hyphen or a zero-width space pasted with the
URL (and a zero-width joiner, which Sinhala's ශ්‍රී needs), while the redirect handed the host
to yarl, which refuses them: every click answered 502. Both now take the IDNA 2008 form under
UTS 46 (the `idna` package, as invite addresses do: bot.email.message.ascii_domain), which is
what browsers use.
"""

from __future__ import annotations

import idna


def ascii_host(host: str) -> str | None:
    """`host` as its ASCII (A-label) form, as browsers map it (full-width letters and case
    folded, a soft hyphen or a zero-width space dropped, a zero-width joiner kept where its
    script needs it); None when it is no host name. An ASCII host is returned as it is."""
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
