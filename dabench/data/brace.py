"""Counting the members of a brace pattern (``shard-{000000..000999}.tar``) without expanding it.

``braceexpand`` (webdataset's pattern syntax) hands each brace group to ``itertools.product``, which
materialises it: ``{0..999999999}`` builds a billion strings before the first one is returned.
:func:`count_members` walks the same grammar (literals, ``{a,b}`` sequences, ``{1..9..2}`` and
``{a..e}`` ranges, nesting, backslash escapes) and multiplies/sums sizes instead, so a pattern is
counted in time linear in its length and refused above a limit before anything is expanded.
"""
from __future__ import annotations

MAX_PATTERN_CHARS = 4096


def _range_size(expr: str) -> int | None:
    """Members of a ``{a..b[..step]}`` range, by ``braceexpand``'s own rule (``len(range)``: O(1))."""
    import braceexpand as b

    m = b.int_range_re.match(expr)
    if m:
        start, end, step = m.groups()
        step = (int(step) or 1) if step else 1
        start, end = int(start), int(end)
        return len(range(start, end + 1, step) if start < end else range(start, end - 1, -step))
    m = b.char_range_re.match(expr)
    if m:
        start, end, step = m.groups()
        step = (int(step) or 1) if step else 1
        i, j = b.alphabet.index(start), b.alphabet.index(end)
        return len(b.alphabet[i:j + 1:step] if i < j else b.alphabet[i:(j or -len(b.alphabet)) - 1:-step])
    return None


def _sequence_size(seq: str) -> int | None:
    parts, start, pos, depth = [], 0, 0, 0
    while pos < len(seq):
        c = seq[pos]
        if c == "\\":
            pos += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(seq[start:pos])
            start = pos + 1
        pos += 1
    if depth != 0 or not parts:
        return None
    parts.append(seq[start:])
    return sum(_pattern_size(p) for p in parts)


def _pattern_size(pattern: str) -> int:
    total, start, pos, depth = 1, 0, 0, 0
    while pos < len(pattern):
        c = pattern[pos]
        if c == "\\":
            pos += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                expr = pattern[start + 1:pos]
                size = _range_size(expr)
                if size is None:
                    size = _sequence_size(expr)
                if size is None:  # braces that are neither: kept literally around their expanded content
                    size = _pattern_size(expr)
                total *= size
                start = pos + 1
        if c == "{" and depth == 1:
            start = pos
        pos += 1
    if depth != 0:
        raise ValueError(f"unbalanced braces in {pattern[:80]!r}")
    return total


def count_members(pattern: str) -> int:
    """How many names ``braceexpand(pattern)`` yields, computed without expanding it. ``ValueError``
    for unbalanced braces, a pattern over :data:`MAX_PATTERN_CHARS` or one nested too deeply."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"the pattern is {len(pattern)} characters long (at most {MAX_PATTERN_CHARS})")
    try:
        return _pattern_size(pattern)
    except RecursionError:
        raise ValueError("the pattern's braces are nested too deeply") from None
