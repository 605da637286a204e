"""Compare CLI output without depending on terminal width or path length."""
from __future__ import annotations


def flat(output: str) -> str:
    """``output`` with rich panel borders removed and all whitespace (incl. line wraps) collapsed to one space."""
    for ch in "│╭╮╰╯─┃┏┓┗┛━":
        output = output.replace(ch, " ")
    return " ".join(output.split())
