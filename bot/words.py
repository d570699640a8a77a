"""Counts in words, for what the shell and the audit log say."""


def plural(count: int, word: str) -> str:
    """"1 contact", "2,000 contacts" (nouns with a plain -s plural): the shell said "1
    contacts removed"."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"
