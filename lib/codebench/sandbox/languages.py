"""Toolchains for whole-program jobs and the nonce trailer used for MultiPL-E tests.

A `Toolchain` says which file the program is written to, how to compile it (optional) and
how to run it; argv entries may use {heap_mb}, {main_class} and {source}. Compilers and
runtimes run inside the same sandbox as Python samples. A toolchain whose program is not
found (on the host PATH before starting, or by execvp inside the sandbox) gives the outcome
toolchain-missing. Override with ``Sandbox(toolchains={"cpp": {"compiler": "/opt/g++"}})``
(or "runtime", or any Toolchain field).

Nonce: with ``nonce=True`` a trailer that prints a random per-run nonce runs after the tests
(Python/JS/Bash: appended; C++/Java: the tests' `main` is renamed and a new `main` calls it
and then prints the nonce). A pass needs exit status 0 and the nonce line, so an early
``exit(0)`` in model code fails. Tests of these languages run in the sandboxed process
itself, so deliberately adversarial code could still read the nonce from its own source;
the trusted-verdict guarantee covers Python `run_tests` jobs only.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codebench.sandbox.isolation import BASE_ENV

JVM = (
    "-XX:+UseSerialGC",
    "-Xmx{heap_mb}m",
    "-XX:TieredStopAtLevel=1",
    "-XX:CICompilerCount=1",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:CompressedClassSpaceSize=64m",
    "-XX:MaxMetaspaceSize=256m",
)


@dataclass(frozen=True)
class Toolchain:
    """How to build and run one language inside the sandbox."""

    language: str
    source: str
    run: tuple[str, ...]
    compile: tuple[str, ...] = ()
    nproc: int | None = None
    nofile: int | None = None


TOOLCHAINS: dict[str, Toolchain] = {
    "python": Toolchain("python", "main.py", ()),  # run in a child forked from the warm worker
    "js": Toolchain(
        "js", "main.js", ("node", "--max-old-space-size={heap_mb}", "--stack-size=4000", "{source}")
    ),
    "cpp": Toolchain(
        "cpp", "main.cpp", ("./main",), ("g++", "-std=c++17", "-O0", "-o", "main", "{source}")
    ),
    "java": Toolchain(
        "java",
        "Problem.java",
        ("java", "-ea", *JVM, "-cp", ".", "{main_class}"),
        ("javac", "-encoding", "UTF-8", *(f"-J{f}" for f in JVM), "{source}"),
        nofile=1024,
    ),
    "sh": Toolchain("sh", "main.sh", ("bash", "{source}")),
}
ALIASES = {
    "py": "python",
    "python3": "python",
    "javascript": "js",
    "node": "js",
    "c++": "cpp",
    "cxx": "cpp",
    "bash": "sh",
    "shell": "sh",
}


def toolchain(language: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Toolchain:
    """The toolchain for `language` (aliases allowed) with `overrides` applied."""
    key = ALIASES.get(language.lower(), language.lower())
    if key not in TOOLCHAINS:
        raise ValueError(f"unknown language {language!r}; known: {sorted(TOOLCHAINS)}")
    tc = TOOLCHAINS[key]
    over = dict((overrides or {}).get(key) or (overrides or {}).get(language) or {})
    if "compiler" in over:
        tc = dataclasses.replace(tc, compile=(over.pop("compiler"), *tc.compile[1:]))
    if "runtime" in over:
        tc = dataclasses.replace(tc, run=(over.pop("runtime"), *tc.run[1:]))
    return dataclasses.replace(
        tc, **{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()}
    )


def missing_program(tc: Toolchain) -> str | None:
    """The first compiler/runtime of `tc` not found on the sandbox PATH, if any."""
    for argv in (tc.compile, tc.run):
        if (
            argv
            and not argv[0].startswith("./")
            and not shutil.which(argv[0], path=BASE_ENV["PATH"])
        ):
            return argv[0]
    return None


_JAVA_NOISE = re.compile(
    r'"""[\s\S]*?"""'  # text block
    r'|"(?:[^"\\\n]|\\.)*"'  # string literal
    r"|'(?:[^'\\\n]|\\.)*'"  # char literal
    r"|//[^\n]*"  # line comment
    r"|/\*[\s\S]*?(?:\*/|\Z)"  # block comment (an unclosed one runs to the end)
)


def java_code_only(program: str) -> str:
    """`program` with comments and string/char literals blanked (same length, newlines kept),
    so that searches for `class X` or `main(` see only code: a prompt's comment such as
    "the class and an array" (MultiPL-E HumanEval_153) or a string holding "class Foo" must not
    choose the main class or the source file name."""
    return _JAVA_NOISE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), program)


def _java_classes(program: str) -> tuple[str, str]:
    """(source file name, class with main) for a Java program."""
    code = java_code_only(program)
    public = re.search(r"\bpublic\s+(?:final\s+|abstract\s+)*class\s+(\w+)", code)
    source = f"{public.group(1)}.java" if public else "Problem.java"
    mains = list(re.finditer(r"\bpublic\s+static\s+void\s+main\s*\(", code))
    owner = "Problem"
    if mains:
        classes = [
            m for m in re.finditer(r"\bclass\s+(\w+)", code) if m.start() < mains[-1].start()
        ]
        owner = classes[-1].group(1) if classes else owner
    return source, owner


def prepare(tc: Toolchain, program: str, nonce: str | None) -> tuple[dict[str, str], str, str]:
    """(files to write, source file name, main class) for running `program` with `tc`."""
    lang, source, main_class = tc.language, tc.source, ""
    if lang == "java":
        source, main_class = _java_classes(program)
        program = re.sub(r"^\s*import\s+org\.javatuples\.\*\s*;\s*$", "", program, flags=re.M)
    if nonce is not None:
        program, main_class = add_nonce(lang, program, nonce, main_class)
    return {source: program}, source, main_class


def add_nonce(lang: str, program: str, nonce: str, main_class: str = "") -> tuple[str, str]:
    """Append a trailer printing `nonce` after the tests; returns (program, main class)."""
    if lang == "python":
        return f"{program}\nprint({nonce!r}, flush=True)\n", main_class
    if lang == "js":
        return f"{program}\nconsole.log({json.dumps(nonce)});\n", main_class
    if lang == "sh":
        return f"{program}\necho {nonce}\n", main_class
    if lang == "cpp":
        mains = list(re.finditer(r"\bint\s+main\s*\(\s*(?:void\s*)?\)", program))
        if not mains:
            raise ValueError("cannot add the nonce trailer: no `int main()` in the program")
        m = mains[-1]
        ret = "int" if re.search(r"\breturn\b", program[m.end() :]) else "void"
        program = f"{program[: m.start()]}{ret} codebench_tests_main(){program[m.end() :]}"
        trailer = f'\nint main() {{\n    codebench_tests_main();\n    __builtin_puts("{nonce}");\n    return 0;\n}}\n'
        return program + trailer, main_class
    if lang == "java":
        pat = r"public\s+static\s+void\s+main\s*\(\s*String\s*(?:\[\]\s*\w+|\w+\s*\[\]|\.\.\.\s*\w+)\s*\)"
        mains = list(re.finditer(pat, java_code_only(program)))  # same offsets as program
        if not mains:
            raise ValueError(
                "cannot add the nonce trailer: no `public static void main(String[] args)`"
            )
        m = mains[-1]
        program = f"{program[: m.start()]}public static void codebenchTestsMain(String[] args){program[m.end() :]}"
        trailer = (
            f"\nclass CodebenchMain {{\n    public static void main(String[] args) throws Throwable {{\n"
            f"        {main_class or 'Problem'}.codebenchTestsMain(args);\n"
            f'        System.out.println("{nonce}");\n        System.out.flush();\n    }}\n}}\n'
        )
        return program + trailer, "CodebenchMain"
    raise ValueError(f"no nonce trailer for {lang}")


def expand(argv: tuple[str, ...], **values: Any) -> list[str]:
    """Fill {heap_mb}, {main_class}, {source} placeholders."""
    return [a.format(**values) if "{" in a else a for a in argv]
