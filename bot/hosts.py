"""Host names as browsers look them up.

A store URL is checked when a campaign is saved and sent on by every referral link's
redirect: both must read its host the same way. The check read it with the standard
library's IDNA 2003 codec, which drops a soft hyphen or a zero-width space pasted with the
URL (and a zero-width joiner, which Sinhala's ශ්‍රී needs), while the redirect handed the host
to yarl, which refuses them: every click answered 502. Both now take the IDNA 2008 form under
UTS 46 (the `idna` package, as invite addresses do: bot.email.message.ascii_domain), which is
what browsers use.

Browsers read it without UTS 46's STD3 rules (the URL Standard's host parser isn't strict), so
a label of ASCII letters, digits, hyphens and underscores (`my_shop`, as some hosting setups
name subdomains) opens, while IDNA 2008 alone refuses any `_`: such labels are kept as they
are. An internationalised label keeps IDNA 2008's rules, and nothing else that STD3 refuses
(spaces, `$`, `@`) gets through.
"""

from __future__ import annotations

import re

import idna

# An ASCII label with an underscore, after UTS 46 mapping (lower case). Its ends as a DNS
# label's, and no `xn--` prefix: that is an A-label, whose Punycode must hold.
_UNDERSCORED = re.compile(r"(?!xn--)[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")


def ascii_host(host: str) -> str | None:
    """`host` as its ASCII (A-label) form, as browsers map it (full-width letters and case
    folded, a soft hyphen or a zero-width space dropped, a zero-width joiner kept where its
    script needs it, an ASCII label's `_` kept); None when it is no host name. An ASCII host
    is returned as it is."""
    if host.isascii():
        return host
    try:
        labels = idna.uts46_remap(host, std3_rules=False).split(".")
        kept = {i: label for i, label in enumerate(labels)
                if "_" in label and _UNDERSCORED.fullmatch(label)}  # fmt: skip
        # each such label stands in as letters of its length, so that idna still checks the
        # rest and the lengths (63 a label, 253 the name) with it
        stand_ins = ["x" * len(kept[i]) if i in kept else label for i, label in enumerate(labels)]
        encoded = idna.encode(".".join(stand_ins)).decode("ascii").split(".")
    except (idna.IDNAError, UnicodeError):
        return None
    return ".".join(kept.get(i, label) for i, label in enumerate(encoded))
