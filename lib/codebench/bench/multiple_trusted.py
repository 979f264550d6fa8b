"""Trusted verdicts for MultiPL-E (JavaScript, C++, Java, Bash).

Upstream MultiPL-E runs one program (prompt + completion + assert lines) and passes it when the
process exits 0. The asserts and the expected values then live in the process the completion
controls: it can redefine `assert` (C++ macro), patch `node:assert`, redefine shell builtins,
set traps, or read the expected values out of its own source file. Here (`verdict="trusted"`,
the default) the verdict is decided on the host instead:

1. `parse_tests` splits the test program into cases, one `candidate(ARGS) == EXPECTED` per line
   (MultiPL-E generates them from Python's tests); a line it cannot parse makes the problem
   unsupported (`BenchError`), never silently skipped.
2. The *candidate program* is prompt + completion + a harness that calls the function on each
   case's arguments and serialises every result (tagged JSON; Bash: the command substitution's
   output, base64). It holds the arguments, never an expected value or a success token.
3. The *expected program* holds only the expected expressions (and the prompt's type
   definitions for C++/Java): no model code. It runs once per problem (cached in memory and on
   disk by the SHA-256 of its text).
4. The host compares the two lists with the language's own equality (C++ `==` / Java
   `equals` with numeric promotion; Node's legacy `assert.deepEqual`, where primitives compare
   with `==`; Bash string equality). A pass needs exit status 0 and, for every case, exactly one
   result equal to the expected value.

Whatever the completion redefines or reads, it cannot pass without printing each expected value,
and nothing it can reach contains one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebench.bench.tasks import BenchError

VERSION = "2"  # bump when a harness changes: the expected-value cache is keyed by it
BROKEN = "the problem's own code fails: "
MARK_OK = "\x1eCBR "
MARK_ERR = "\x1eCBE "


@dataclass(frozen=True)
class Case:
    """One test line: the call's argument text and the expected expression (source text)."""

    index: int
    args: str
    expected: str
    line: str


# ---------------------------------------------------------------------- parsing
_QUOTES = {'"', "'", "`"}


def _match(text: str, i: int, language: str) -> int:
    """Index of the bracket closing text[i] ('(' / '[' / '{'), skipping string literals."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[i]]]
    j = i + 1
    while j < len(text):
        c = text[j]
        if c in _QUOTES and not (language in ("cpp", "java") and c == "`"):
            q = c
            j += 1
            while j < len(text) and text[j] != q:
                j += 2 if text[j] == "\\" else 1
        elif c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if not stack or c != stack[-1]:
                raise ValueError(f"unbalanced {c!r}")
            stack.pop()
            if not stack:
                return j
        j += 1
    raise ValueError("unterminated bracket")


def _strip_parens(expr: str, language: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and _match(expr, 0, language) == len(expr) - 1:
        expr = expr[1:-1].strip()
    return expr


def _sh_close(text: str, i: int) -> int:
    """Index of the ')' closing a `$(` whose body starts at i (quotes respected)."""
    depth, j = 1, i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "'":
            j = text.index("'", j + 1)
        elif c == '"':
            j += 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ValueError("unterminated $(")


def candidate_name(language: str, tests: str, entry_point: str | None) -> str:
    m = re.search(r"\b(?:let|auto|var|const)\s+candidate\s*=\s*(\w+)\s*;", tests)
    if m:
        return m.group(1)
    if language == "sh":
        m = re.search(r"candidate\(\)\s*\{\s*(\w+)\s+\"\$@\"", tests)
        if m:
            return m.group(1)
    if entry_point:
        return entry_point
    raise BenchError("cannot tell which function the tests call")


def _parse_line(language: str, s: str, name: str) -> tuple[str, str] | None:
    """(args, expected) of one test line, None if it is not a test line."""
    callees = {"candidate", name}
    if language == "js":
        m = re.fullmatch(r"\s*assert\.deepEqual\((.*)\);?\s*", s)
        if not m:
            return None
        inner = m.group(1)
        callee = next((c for c in callees if re.match(rf"{re.escape(c)}\(", inner)), None)
        if callee is None:
            raise ValueError(f"assert does not start with {name}(")
        k = _match(inner, len(callee), language)
        rest = inner[k + 1 :].lstrip()
        if not rest.startswith(","):
            raise ValueError("no expected value after the call")
        return inner[len(callee) + 1 : k], rest[1:].strip()
    if language in ("cpp", "java"):
        m = re.fullmatch(r"\s*assert\s*\((.*)\)\s*;\s*", s)
        if not m:
            return None
        inner = m.group(1).strip()
        if not any(re.match(rf"{re.escape(c)}\s*\(", inner) for c in callees):
            raise ValueError(f"assert does not start with {name}(")
        k = _match(inner, inner.index("("), language)
        args, rest = inner[inner.index("(") + 1 : k], inner[k + 1 :].strip()
        if rest.startswith("=="):
            return args, _strip_parens(rest[2:], language)
        if language == "java" and rest.startswith(".equals("):
            e = _match(rest, len(".equals"), language)
            if rest[e + 1 :].strip():
                raise ValueError("text after .equals(...)")
            return args, _strip_parens(rest[len(".equals(") : e], language)
        raise ValueError("no == / .equals after the call")
    if language == "sh":
        m = re.fullmatch(rf"\s*\[\[ \$\((?:candidate|{re.escape(name)})(.*)", s)
        if not m:
            return None
        body = m.group(1)
        k = _sh_close(body, 0)
        args, rest = body[:k].strip(), body[k + 1 :]
        m2 = re.fullmatch(r' = ("(?:[^"\\$`]|\\.)*") \]\]\s*', rest)
        if not m2:
            raise ValueError("expected value is not a plain double-quoted string")
        return args, m2.group(1)
    raise BenchError(f"no trusted harness for language {language!r}")


def parse_tests(language: str, tests: str, entry_point: str | None = None) -> list[Case]:
    """The test cases of a MultiPL-E test program; BenchError if a line cannot be read."""
    name = candidate_name(language, tests, entry_point)
    cases = []
    for ln in tests.split("\n"):
        try:
            got = _parse_line(language, ln, name)
        except (ValueError, IndexError) as e:
            raise BenchError(f"unreadable test line ({e}): {ln.strip()[:200]}") from None
        if got is None:
            if language != "sh" and re.search(rf"\b(candidate|{re.escape(name)})\s*\(", ln):
                raise BenchError(f"a call outside the recognised test lines: {ln.strip()[:200]}")
            continue
        cases.append(Case(len(cases), got[0], got[1], ln))
    if not cases:
        raise BenchError("no test lines found")
    return cases


# ---------------------------------------------------------------------- harnesses
JS_SER = r"""
const __cb_fs = require('fs');
function __cb_enc(v, d) {
  if (d > 200) throw new Error('value too deep');
  if (v === undefined) return {'$': 'undefined'};
  if (v === null) return null;
  const t = typeof v;
  if (t === 'number') {
    if (Number.isNaN(v)) return {'$': 'nan'};
    if (!Number.isFinite(v)) return {'$': v > 0 ? 'inf' : '-inf'};
    return Number.isInteger(v) ? {'$': 'int', 'v': String(v)} : v;
  }
  if (t === 'string' || t === 'boolean') return v;
  if (t === 'bigint') return {'$': 'int', 'v': v.toString()};
  if (Array.isArray(v)) return v.map((x) => __cb_enc(x, d + 1));
  if (t === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null)
      return {'$': 'obj', 'v': Object.keys(v).map((k) => [k, __cb_enc(v[k], d + 1)])};
  }
  return {'$': 'other', 'v': Object.prototype.toString.call(v)};
}
const __cb_out = [];
function __cb_emit(i, f) {
  let line;
  try { line = '\x1eCBR ' + i + ' ' + JSON.stringify(__cb_enc(f(), 0)); }
  catch (e) { line = '\x1eCBE ' + i + ' ' + JSON.stringify(String(e && e.stack || e).slice(0, 500)); }
  __cb_out.push(line);
}
function __cb_done() { __cb_fs.writeSync(1, '\n' + __cb_out.join('\n') + '\n'); }
"""

CPP_SER = r"""
#include <sys/wait.h>
#include <unistd.h>
namespace codebench_ser {
inline void str(std::string& o, const std::string& s) {
    static const char* hex = "0123456789abcdef";
    o += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') { o += '\\'; o += (char)c; }
        else if (c < 0x20 || c >= 0x7f) { o += "\\u00"; o += hex[c >> 4]; o += hex[c & 15]; }
        else o += (char)c;
    }
    o += '"';
}
inline void enc(std::string& o, const std::string& s) { str(o, s); }
inline void enc(std::string& o, const char* s) { str(o, std::string(s)); }
inline void enc(std::string& o, bool b) { o += b ? "true" : "false"; }
inline void enc(std::string& o, std::nullopt_t) { o += "null"; }
inline void enc(std::string& o, char c) { str(o, std::string(1, c)); }
inline void num(std::string& o, double d) {
    if (std::isnan(d)) { o += "{\"$\":\"nan\"}"; return; }
    if (std::isinf(d)) { o += d > 0 ? "{\"$\":\"inf\"}" : "{\"$\":\"-inf\"}"; return; }
    char buf[64]; snprintf(buf, sizeof buf, "%.17g", d);
    std::string s(buf);
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    o += s;
}
template <class T> typename std::enable_if<std::is_integral<T>::value>::type enc(std::string& o, T v) {
    o += "{\"$\":\"int\",\"v\":\""; o += std::to_string(v); o += "\"}";
}
template <class T> typename std::enable_if<std::is_floating_point<T>::value>::type enc(std::string& o, T v) {
    num(o, (double)v);
}
template <class T> void enc(std::string& o, const std::optional<T>& v);
template <class T> void enc(std::string& o, const std::vector<T>& v);
template <class K, class V> void enc(std::string& o, const std::map<K, V>& v);
template <class A, class B> void enc(std::string& o, const std::pair<A, B>& v);
template <class... T> void enc(std::string& o, const std::tuple<T...>& v);
template <class T> void enc(std::string& o, const std::optional<T>& v) {
    if (v.has_value()) enc(o, *v); else o += "null";
}
template <class T> void enc(std::string& o, const std::vector<T>& v) {
    o += '[';
    bool first = true;
    for (const auto& x : v) { if (!first) o += ','; first = false; enc(o, (T)x); }
    o += ']';
}
template <class K, class V> void enc(std::string& o, const std::map<K, V>& v) {
    o += "{\"$\":\"map\",\"v\":[";
    bool first = true;
    for (const auto& kv : v) {
        if (!first) o += ','; first = false;
        o += '['; enc(o, kv.first); o += ','; enc(o, kv.second); o += ']';
    }
    o += "]}";
}
template <class A, class B> void enc(std::string& o, const std::pair<A, B>& v) {
    o += '['; enc(o, v.first); o += ','; enc(o, v.second); o += ']';
}
template <class... T> void enc(std::string& o, const std::tuple<T...>& v) {
    o += '[';
    bool first = true;
    std::apply([&](const auto&... x) { ((o += first ? "" : ",", first = false, enc(o, x)), ...); }, v);
    o += ']';
}
// A C++ union has no record of its active member and reading another one may crash (a
// std::string member that was never constructed). Each member is encoded in a forked child:
// a crash or exception there marks that member unreadable; the host reads only the member
// whose type matches the expected value, as the union's operator== does. Every member is
// tried on every case, so the harness says nothing about the expected value's type.
template <class F> std::string isolated(F f) {
    static const char* bad = "{\"$\":\"unreadable\"}";
    int fd[2];
    if (pipe(fd) != 0) return bad;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { close(fd[0]); close(fd[1]); return bad; }
    if (pid == 0) {
        close(fd[0]);
        std::string s;
        try { f(s); } catch (...) { _exit(1); }
        size_t k = 0;
        while (k < s.size()) { ssize_t w = ::write(fd[1], s.data() + k, s.size() - k); if (w <= 0) _exit(1); k += w; }
        _exit(0);
    }
    close(fd[1]);
    std::string s;
    char buf[4096];
    ssize_t r;
    while ((r = ::read(fd[0], buf, sizeof buf)) > 0) { if (s.size() < (1u << 20)) s.append(buf, r); }
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || s.empty() || s.size() >= (1u << 20)) return bad;
    return s;
}
//CODEBENCH_UNIONS
static std::string out;
template <class F> void emit(int i, F f) {
    std::string line;
    try {
        line = "\x1e" "CBR " + std::to_string(i) + " ";
        enc(line, f());
    } catch (const std::exception& e) {
        line = "\x1e" "CBE " + std::to_string(i) + " ";
        str(line, std::string("exception: ") + e.what());
    } catch (...) {
        line = "\x1e" "CBE " + std::to_string(i) + " \"exception\"";
    }
    out += line; out += '\n';
}
inline int done() {
    std::string s = "\n" + out;
    size_t k = 0;
    while (k < s.size()) { ssize_t w = ::write(1, s.data() + k, s.size() - k); if (w <= 0) break; k += w; }
    return 0;
}
}  // namespace codebench_ser
"""

JAVA_SER = r"""
final class CodebenchSer {
    interface Call { Object call() throws Throwable; }
    static final StringBuilder OUT = new StringBuilder();
    static void str(StringBuilder o, String s) {
        o.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') { o.append('\\').append(c); }
            else if (c < 0x20 || c >= 0x7f) { o.append(String.format("\\u%04x", (int) c)); }
            else o.append(c);
        }
        o.append('"');
    }
    static void num(StringBuilder o, double d) {
        if (Double.isNaN(d)) { o.append("{\"$\":\"nan\"}"); return; }
        if (Double.isInfinite(d)) { o.append(d > 0 ? "{\"$\":\"inf\"}" : "{\"$\":\"-inf\"}"); return; }
        String s = Double.toString(d).replace("E", "e");
        o.append(s);
    }
    static void enc(StringBuilder o, Object v, int depth) throws Exception {
        if (depth > 200) throw new RuntimeException("value too deep");
        if (v == null) { o.append("{\"$\":\"null\"}"); return; }
        if (v instanceof Boolean) { o.append(((Boolean) v) ? "true" : "false"); return; }
        if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte
                || v instanceof java.math.BigInteger) {
            o.append("{\"$\":\"int\",\"v\":\"").append(v.toString()).append("\"}"); return;
        }
        if (v instanceof Double || v instanceof Float) { num(o, ((Number) v).doubleValue()); return; }
        if (v instanceof Character) { str(o, v.toString()); return; }
        if (v instanceof String) { str(o, (String) v); return; }
        if (v instanceof java.util.Optional) {
            java.util.Optional<?> opt = (java.util.Optional<?>) v;
            if (opt.isPresent()) enc(o, opt.get(), depth + 1); else o.append("null");
            return;
        }
        if (v instanceof java.util.List) {
            o.append('[');
            boolean first = true;
            for (Object x : (java.util.List<?>) v) { if (!first) o.append(','); first = false; enc(o, x, depth + 1); }
            o.append(']');
            return;
        }
        if (v instanceof java.util.Map) {
            java.util.List<String> items = new java.util.ArrayList<>();
            for (java.util.Map.Entry<?, ?> e : ((java.util.Map<?, ?>) v).entrySet()) {
                StringBuilder b = new StringBuilder("[");
                enc(b, e.getKey(), depth + 1); b.append(','); enc(b, e.getValue(), depth + 1); b.append(']');
                items.add(b.toString());
            }
            java.util.Collections.sort(items);
            o.append("{\"$\":\"map\",\"v\":[").append(String.join(",", items)).append("]}");
            return;
        }
        Class<?> k = v.getClass();
        if (k.getSimpleName().equals("Pa" + "ir")) {
            o.append('[');
            enc(o, k.getMethod("getValue0").invoke(v), depth + 1);
            o.append(',');
            enc(o, k.getMethod("getValue1").invoke(v), depth + 1);
            o.append(']');
            return;
        }
        o.append("{\"$\":\"other\",\"v\":"); str(o, k.getName()); o.append('}');
    }
    static void emit(int i, Call f) {
        StringBuilder line = new StringBuilder();
        try {
            Object v = f.call();
            line.append("\u001eCBR ").append(i).append(' ');
            enc(line, v, 0);
        } catch (Throwable e) {
            line = new StringBuilder("\u001eCBE ").append(i).append(' ');
            String msg = String.valueOf(e);
            str(line, msg.length() > 500 ? msg.substring(0, 500) : msg);
        }
        OUT.append(line).append('\n');
    }
    static void done() {
        System.out.print("\n" + OUT);
        System.out.flush();
    }
}
"""

SH_SER = r"""
__cb_emit() {
    builtin printf '\n\036CBR %s %s\n' "$1" "$(builtin printf '%s' "$2" | command base64 -w0)"
}
"""


def _cpp_unions(prompt: str) -> str:
    """Serialisers for the prompt's `Union_*` structs: every field, tagged with its kind."""
    out = []
    for m in re.finditer(r"\b(?:struct|union)\s+(Union_\w+)\s*\{(.*?)\n\};", prompt, re.S):
        name, body = m.group(1), m.group(2)
        fields = re.findall(r"^\s*([\w:<>, ]+?)\s+(f\d+)\s*;", body, re.M)
        parts = []
        for ftype, fname in fields:
            t = ftype.replace(" ", "")
            kind = (
                "str"
                if t == "std::string"
                else "float"
                if t in ("float", "double")
                else "int"
                if t in ("long", "int", "longlong")
                else "null"
                if "nullopt" in t
                else "list"
                if t.startswith("std::vector")
                else "other"
            )
            parts.append((kind, fname))
        items = " o += ','; ".join(
            f'o += "[\\"{k}\\","; '
            f"o += isolated([&](std::string& s) {{ enc(s, v.{f}); }}); o += ']';"
            for k, f in parts
        )
        out.append(
            f"inline void enc(std::string& o, const {name}& v) {{ "
            f'o += "{{\\"$\\":\\"union\\",\\"v\\":["; {items} o += "]}}"; }}'
        )
    return "\n".join(out)


def _strip_signature(prompt: str) -> str:
    """The prompt without its last (signature) line: includes, type definitions, comments."""
    lines = prompt.rstrip("\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines[:-1]) + "\n"


def _java_class(prompt: str) -> str:
    from codebench.sandbox.languages import java_code_only

    m = re.search(r"^\s*(?:public\s+)?class\s+(\w+)", java_code_only(prompt), re.M)
    return m.group(1) if m else "Problem"


def candidate_program(
    language: str, prompt: str, completion: str, tests: str, entry_point: str | None
) -> str:
    """prompt + completion + a harness that serialises the function's result on each case."""
    cases = parse_tests(language, tests, entry_point)
    name = candidate_name(language, tests, entry_point)
    code = prompt + completion + "\n"
    if language == "js":
        calls = "".join(f"__cb_emit({c.index}, () => __cb_candidate({c.args}));\n" for c in cases)
        return f"{code}{JS_SER}\nconst __cb_candidate = {name};\n{calls}__cb_done();\n"
    if language == "cpp":
        head = tests[: tests.index("int main")] if "int main" in tests else "}\n"
        ser = CPP_SER.replace("//CODEBENCH_UNIONS", _cpp_unions(prompt))
        calls = "".join(
            f"    codebench_ser::emit({c.index}, [&]() {{ return candidate({c.args}); }});\n"
            for c in cases
        )
        return (
            f"{code}{head}{ser}\nint main() {{\n    auto candidate = {name};\n{calls}"
            "    return codebench_ser::done();\n}\n"
        )
    if language == "java":
        cls = _java_class(prompt)
        calls = "".join(
            f"        CodebenchSer.emit({c.index}, () -> {cls}.{name}({c.args}));\n" for c in cases
        )
        return (
            f"{code}    }}\n\n}}\n{JAVA_SER}\nclass CodebenchMain {{\n"
            f"    public static void main(String[] args) {{\n{calls}"
            "        CodebenchSer.done();\n    }\n}\n"
        )
    if language == "sh":
        head = tests[: tests.index("set -e")] if "set -e" in tests else tests
        calls = "".join(
            f'__cb_out=$({name} {c.args}) || true\n__cb_emit {c.index} "$__cb_out"\n' for c in cases
        )
        return f"{code}{head}{SH_SER}\n{calls}"
    raise BenchError(f"no trusted harness for language {language!r}")


def expected_program(language: str, prompt: str, tests: str, entry_point: str | None) -> str:
    """A program with only the expected expressions (and the prompt's type definitions)."""
    cases = parse_tests(language, tests, entry_point)
    if language == "js":
        calls = "".join(f"__cb_emit({c.index}, () => ({c.expected}));\n" for c in cases)
        return f"{JS_SER}\n{calls}__cb_done();\n"
    if language == "cpp":
        ser = CPP_SER.replace("//CODEBENCH_UNIONS", _cpp_unions(prompt))
        calls = "".join(
            f"    codebench_ser::emit({c.index}, [&]() {{ return {c.expected}; }});\n"
            for c in cases
        )
        return (
            f"{_strip_signature(prompt)}{ser}\nint main() {{\n{calls}"
            "    return codebench_ser::done();\n}\n"
        )
    if language == "java":
        calls = "".join(
            f"        CodebenchSer.emit({c.index}, () -> ({c.expected}));\n" for c in cases
        )
        return (
            f"{_strip_signature(prompt)}}}\n{JAVA_SER}\nclass CodebenchMain {{\n"
            f"    public static void main(String[] args) {{\n{calls}"
            "        CodebenchSer.done();\n    }\n}\n"
        )
    if language == "sh":
        calls = "".join(f"__cb_emit {c.index} {c.expected}\n" for c in cases)
        return f"{SH_SER}\n{calls}"
    raise BenchError(f"no trusted harness for language {language!r}")


# ---------------------------------------------------------------------- results
class _Missing:
    pass


def parse_results(stdout: str, n: int, language: str) -> tuple[list[Any], str | None]:
    """Per-case results from a harness's stdout: values, or ('error', msg); `why` when unusable.

    Every case must be reported exactly once; a duplicated or malformed line makes the whole
    output unusable (a completion printing look-alike lines cannot pass that way).
    """
    got: dict[int, Any] = {}
    for line in stdout.split("\n"):
        if not (line.startswith(MARK_OK) or line.startswith(MARK_ERR)):
            continue
        ok = line.startswith(MARK_OK)
        head, _, payload = line[len(MARK_OK) :].partition(" ")
        if not head.isdigit() or not (0 <= int(head) < n):
            return [], f"malformed result line {line[:80]!r}"
        i = int(head)
        if i in got:
            return [], f"case {i} reported twice"
        try:
            if not ok:
                got[i] = ("error", str(json.loads(payload)))
            elif language == "sh":
                raw = base64.b64decode(payload.strip(), validate=True)
                got[i] = ("ok", raw.decode("utf-8", "surrogateescape"))
            else:
                got[i] = ("ok", json.loads(payload))
        except (ValueError, TypeError):
            return [], f"case {i}: malformed result"
    return [got.get(i, _Missing) for i in range(n)], None


def _kind(v: Any) -> str:
    if isinstance(v, dict):
        return {"int": "int", "nan": "float", "inf": "float", "-inf": "float"}.get(v.get("$"), "x")
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    if v is None:
        return "null"
    return "x"


def _number(v: Any) -> int | float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        return v
    if isinstance(v, dict):
        t = v.get("$")
        if t == "int":
            try:
                return int(v["v"])
            except (KeyError, ValueError, TypeError):
                return None
        if t in ("nan", "inf", "-inf"):
            return float(t)
    return None


def _num_eq(a: int | float, b: int | float) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    try:
        return float(a) == float(b)  # C++/Java promotion; nan never equal
    except OverflowError:
        return False


def static_eq(got: Any, exp: Any, depth: int = 0) -> bool:
    """C++ `==` / Java `equals` on tagged values (numbers promote; the expected side leads)."""
    if depth > 200:
        return False
    if isinstance(got, dict) and got.get("$") == "union":
        # C++ Union_* structs: operator== picks the field whose type matches the expected value
        want = _kind(exp)
        want = "null" if exp is None else want
        for item in got.get("v") or []:
            if isinstance(item, list) and len(item) == 2 and item[0] == want:
                return static_eq(item[1], exp, depth + 1)
        return False
    ne, ng = _number(exp), _number(got)
    if ne is not None or ng is not None:
        return ne is not None and ng is not None and _num_eq(ng, ne)
    if isinstance(exp, bool) or isinstance(got, bool):
        return isinstance(exp, bool) and isinstance(got, bool) and exp == got
    if isinstance(exp, str) or exp is None:
        return type(got) is type(exp) and got == exp
    if isinstance(exp, list):
        return (
            isinstance(got, list)
            and len(got) == len(exp)
            and all(static_eq(g, e, depth + 1) for g, e in zip(got, exp, strict=True))
        )
    if isinstance(exp, dict) and isinstance(got, dict):
        if exp.get("$") != got.get("$"):
            return False
        if exp.get("$") == "map":
            ge, ee = got.get("v") or [], exp.get("v") or []
            return len(ge) == len(ee) and all(
                static_eq(g, e, depth + 1) for g, e in zip(ge, ee, strict=True)
            )
        return exp == got and exp.get("$") not in ("other",)
    return False


_JS_NUM = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Infinity)")


def _js_to_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    n = _number(v)
    if n is not None:
        return float(n)
    if isinstance(v, str):
        s = v.strip(" \t\n\r\v\f\u00a0\ufeff")
        if not s:
            return 0.0
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
            return float(int(s, 16))
        if re.fullmatch(r"0[oO][0-7]+", s):
            return float(int(s, 8))
        if re.fullmatch(r"0[bB][01]+", s):
            return float(int(s, 2))
        if _JS_NUM.fullmatch(s):
            return float(s.replace("Infinity", "inf"))
        return math.nan
    return None


def _js_prim(v: Any) -> bool:
    return not isinstance(v, list) and not (isinstance(v, dict) and v.get("$") in ("obj", "other"))


def js_loose_eq(a: Any, b: Any) -> bool:
    """JavaScript `==` on two primitives (as legacy deepEqual uses it; NaN equals NaN)."""
    na, nb = _number(a), _number(b)
    a_nullish = a is None or (isinstance(a, dict) and a.get("$") == "undefined")
    b_nullish = b is None or (isinstance(b, dict) and b.get("$") == "undefined")
    if a_nullish or b_nullish:
        return a_nullish and b_nullish
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if na is not None and nb is not None and not isinstance(a, bool) and not isinstance(b, bool):
        fa, fb = float(na), float(nb)
        return fa == fb or (math.isnan(fa) and math.isnan(fb))
    x, y = _js_to_number(a), _js_to_number(b)
    return x is not None and y is not None and x == y


def js_deep_eq(got: Any, exp: Any, depth: int = 0) -> bool:
    """Node's legacy `assert.deepEqual` on tagged values."""
    if depth > 200:
        return False
    if _js_prim(got) and _js_prim(exp):
        return js_loose_eq(got, exp)
    if _js_prim(got) or _js_prim(exp):
        return False
    if isinstance(got, list) or isinstance(exp, list):
        return (
            isinstance(got, list)
            and isinstance(exp, list)
            and len(got) == len(exp)
            and all(js_deep_eq(g, e, depth + 1) for g, e in zip(got, exp, strict=True))
        )
    if got.get("$") == "obj" and exp.get("$") == "obj":
        try:
            gd, ed = dict(got["v"]), dict(exp["v"])
        except (TypeError, ValueError, KeyError):
            return False
        return set(gd) == set(ed) and all(js_deep_eq(gd[k], ed[k], depth + 1) for k in ed)
    return False


def values_equal(language: str, got: Any, exp: Any) -> bool:
    if language == "js":
        return js_deep_eq(got, exp)
    if language == "sh":
        return isinstance(got, str) and isinstance(exp, str) and got == exp
    return static_eq(got, exp)


def show(v: Any, limit: int = 120) -> str:
    try:
        s = json.dumps(v, ensure_ascii=True)
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def compare(language: str, cases: list[Case], expected: list[Any], result: Any) -> tuple[str, str]:
    """(outcome, detail) of a candidate run against the expected values."""
    outcome = str(getattr(result.outcome, "value", result.outcome))
    if outcome in ("timeout", "crashed", "out-of-memory", "sandbox-error", "toolchain-missing"):
        return outcome, result.detail
    got, why = parse_results(result.stdout or "", len(cases), language)
    if why:
        return "failed", why
    for c, g, e in zip(cases, got, expected, strict=True):
        if g is _Missing:
            tail = (result.detail or result.stderr or "")[-600:]
            return "failed", f"case {c.index} ({c.line.strip()[:160]}): no result. {tail}"
        if g[0] == "error":
            return "failed", f"case {c.index} ({c.line.strip()[:160]}): {g[1][:400]}"
        if not values_equal(language, g[1], e):
            return (
                "failed",
                f"case {c.index} ({c.line.strip()[:160]}): got {show(g[1])}, expected {show(e)}",
            )
    if result.exit_code not in (0, None):
        return "failed", f"exit status {result.exit_code} after the tests"
    return "passed", ""


# ---------------------------------------------------------------------- expected values
def _cache_dir() -> Path:
    root = os.environ.get("CODEBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "codebench"
    )
    return Path(root) / "multiple-expected"


class ExpectedValues:
    """Expected values per problem, computed by running programs with no model code in them.

    `get(key, language, program)` returns (values, None) or (None, why). `prepare(items)` runs
    the missing ones as one batch. Results are cached in memory and on disk (keyed by the
    SHA-256 of the harness version, language and program text), so each problem's expected
    program runs once per machine.
    """

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._mem: dict[str, tuple[list[Any] | None, str | None]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(language: str, program: str) -> str:
        h = hashlib.sha256(f"{VERSION}\0{language}\0{program}".encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def _disk(self, key: str) -> tuple[list[Any], None] | None:
        f = _cache_dir() / f"{key}.json"
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            return data["values"], None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _store(self, key: str, values: list[Any]) -> None:
        d = _cache_dir()
        try:
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps({"values": values}), encoding="utf-8")
            os.replace(tmp, d / f"{key}.json")
        except OSError:
            pass

    def prepare(self, items: list[tuple[str, int, str]]) -> None:
        """Compute the values of (language, n_cases, program) items not known yet, in one batch."""
        todo, seen = [], set()
        for lang, n, prog in items:
            k = self.key(lang, prog)
            if k in self._mem or k in seen:
                continue
            hit = self._disk(k)
            if hit is not None and len(hit[0]) == n:
                self._mem[k] = hit
                continue
            seen.add(k)
            todo.append((k, lang, n, prog))
        if not todo:
            return
        from codebench.sandbox import ProgramJob, Sandbox

        jobs = [
            ProgramJob(program=p, language=lang, timeout=self.timeout) for _, lang, _, p in todo
        ]
        with Sandbox(workers=None, timeout=self.timeout, max_output=1 << 22) as sb:
            results = sb.map(jobs)
        for (k, lang, n, _), r in zip(todo, results, strict=True):
            got, why = parse_results(r.stdout or "", n, lang)
            if why is None:
                missing = [i for i, g in enumerate(got) if g is _Missing or g[0] != "ok"]
                if missing:
                    i = missing[0]
                    why = f"expected value of case {i} could not be computed: " + (
                        got[i][1] if got[i] is not _Missing else (r.detail or "")[-400:]
                    )
            if why is None and r.exit_code not in (0, None):
                why = f"expected program exited {r.exit_code}: {(r.detail or '')[-400:]}"
            if why is None:
                values = [g[1] for g in got]
                self._mem[k] = (values, None)
                self._store(k, values)
            elif str(getattr(r.outcome, "value", r.outcome)) == "failed":
                # the problem's own code (its type definitions, its expected expressions) does
                # not compile or run: no completion can pass it, in either verdict mode
                self._mem[k] = (None, BROKEN + why)
            else:
                self._mem[k] = (None, why)

    def get(self, language: str, n: int, program: str) -> tuple[list[Any] | None, str | None]:
        k = self.key(language, program)
        with self._lock:
            if k not in self._mem:
                self.prepare([(language, n, program)])
            return self._mem[k]
