"""Completion extraction: stop-string truncation that respects string literals, fenced code blocks.

Two protocols produce two kinds of raw output:

- base (prompt completion): the model continues the prompt; the completion is cut at the first
  stop string (`\\ndef`, `\\nclass`, ... or a MultiPL-E problem's own stop tokens). A stop
  string that lies *inside a string literal* (a docstring line starting with `#`, a `"\\n}"`
  inside a C++ string) is not a stop: `truncate_at_stops` skips it. Backends truncate at stop
  strings too (literal-blind, for speed); running this again on their output is harmless.
- instruct (chat): the answer is prose plus markdown fences; `extract_fenced` picks the block
  in the target language that defines the entry point, tolerating a missing language tag, an
  unterminated last fence (generation ran out of tokens) and no fence at all.
"""

from __future__ import annotations

import re

# language -> fence tags accepted for it (lower case; '' = untagged)
FENCE_TAGS: dict[str, tuple[str, ...]] = {
    "python": ("python", "py", "python3", "py3"),
    "js": ("javascript", "js", "node", "nodejs"),
    "cpp": ("cpp", "c++", "cc", "cxx", "c"),
    "java": ("java",),
    "sh": ("bash", "sh", "shell", "zsh"),
}


def _python_literal_spans(code: str) -> list[tuple[int, int]]:
    """[start, end) spans of Python string literals (and comments) in `code`.

    A tokenizer would reject incomplete code, so this is a small scanner: single and triple
    quotes, backslash escapes (which never close a literal, in raw strings either), `#`
    comments. String prefixes (r, b, f, u) need no handling: a span starts at its quote. An
    unterminated literal runs to the end of the text.
    """
    spans: list[tuple[int, int]] = []
    i, n = 0, len(code)
    while i < n:
        ch = code[i]
        if ch == "#":
            j = code.find("\n", i)
            j = n if j < 0 else j
            spans.append((i, j))
            i = j
            continue
        if ch in "'\"":
            start = i
            quote = code[i : i + 3] if code[i : i + 3] in ('"""', "'''") else ch
            j = i + len(quote)
            while j < n:
                if code[j] == "\\":
                    j += 2  # an escaped char never closes a literal (in raw strings too)
                    continue
                if code.startswith(quote, j):
                    j += len(quote)
                    break
                if len(quote) == 1 and code[j] == "\n":
                    break  # single-quoted literals end at a newline (a syntax error, but bounded)
                j += 1
            else:
                j = n
            spans.append((start, min(j, n)))
            i = max(j, start + 1)
            continue
        i += 1
    return spans


def _clike_literal_spans(code: str, quotes: str = "\"'`") -> list[tuple[int, int]]:
    """String/char literal and comment spans for C-like languages (JS, C++, Java) and Bash."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(code)
    while i < n:
        if code.startswith("//", i):
            j = code.find("\n", i)
            j = n if j < 0 else j
            spans.append((i, j))
            i = j
            continue
        if code.startswith("/*", i):
            j = code.find("*/", i + 2)
            j = n if j < 0 else j + 2
            spans.append((i, j))
            i = j
            continue
        ch = code[i]
        if ch in quotes:
            j = i + 1
            while j < n and code[j] != ch:
                j += 2 if code[j] == "\\" else 1
            j = min(j + 1, n)
            spans.append((i, j))
            i = j
            continue
        i += 1
    return spans


def _sh_literal_spans(code: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    i, n = 0, len(code)
    while i < n:
        ch = code[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "#" and (i == 0 or code[i - 1] in " \t\n;"):
            j = code.find("\n", i)
            j = n if j < 0 else j
            spans.append((i, j))
            i = j
            continue
        if ch in "'\"":
            j = i + 1
            while j < n and code[j] != ch:
                j += 2 if (code[j] == "\\" and ch == '"') else 1
            j = min(j + 1, n)
            spans.append((i, j))
            i = j
            continue
        i += 1
    return spans


def literal_spans(code: str, language: str) -> list[tuple[int, int]]:
    """Spans of string literals and comments in `code` for `language`."""
    if language == "python":
        return _python_literal_spans(code)
    if language == "sh":
        return _sh_literal_spans(code)
    if language in ("js", "cpp", "java"):
        return _clike_literal_spans(code, "\"'`" if language == "js" else "\"'")
    return []


def _inside(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < pos < e for s, e in spans)


def truncate_at_stops(
    text: str, stops: list[str], *, language: str | None = None, prefix: str = ""
) -> str:
    """Cut `text` at the earliest stop string that is not inside a string literal.

    `prefix` is the prompt the text continues (so a completion that starts inside an open
    literal is scanned correctly). With `language=None` the cut is literal-blind.
    """
    if not stops:
        return text
    spans = literal_spans(prefix + text, language) if language else []
    offset = len(prefix)
    best = len(text)
    for stop in stops:
        if not stop:
            continue
        start = 0
        while True:
            pos = text.find(stop, start)
            if pos < 0 or pos >= best:
                break
            # the stop is "inside" only if its first char sits strictly inside a literal;
            # stops start with a newline, so a stop right after a closed literal still counts
            if spans and _inside(offset + pos, spans) and _inside(offset + pos + 1, spans):
                start = pos + 1
                continue
            best = pos
            break
    return text[:best]


_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.M
)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """All ```tag ... ``` blocks as (tag lower-cased, body); an unterminated last block counts."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def _defines(code: str, entry_point: str | None, language: str) -> bool:
    if not entry_point:
        return True
    if language == "python":
        return (
            re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M)
            is not None
        )
    return re.search(rf"\b{re.escape(entry_point)}\s*\(", code) is not None


def extract_fenced(text: str, language: str = "python", entry_point: str | None = None) -> str:
    """The code the model meant: the best fenced block, else the text itself.

    Preference: blocks tagged with the target language, then untagged blocks, then any block;
    within those, the first that defines `entry_point`, else the first. Without fences,
    Python text is cut to start at its first line of code (import/from/def/class/@).
    """
    blocks = fenced_blocks(text)
    if blocks:
        tags = FENCE_TAGS.get(language, (language,))
        tagged = [b for t, b in blocks if t in tags]
        untagged = [b for t, b in blocks if t == ""]
        for group in (tagged, untagged, [b for _, b in blocks]):
            if not group:
                continue
            for body in group:
                if _defines(body, entry_point, language):
                    return body.rstrip() + "\n"
            return group[0].rstrip() + "\n"
    if language == "python":
        m = re.search(r"^(?:import |from |def |class |@|async def )", text, re.M)
        if m:
            return text[m.start() :].rstrip() + "\n"
    return text.strip("\n") + "\n" if text.strip() else ""
