"""README.md's shell blocks run in order, as a newcomer would type them, and exit as documented.

The conventions (README.md, "How this README is tested", says the same):

- Every ```sh block runs, one bash script per block, in a temporary folder holding a copy of
  config.toml and bench/make_bars.py, where .venv/bin/paperdesk and .venv/bin/python run this
  checkout with the interpreter running the tests. A block is skipped only when the line before
  it is `<!-- readme-test: skip (why) -->`. Other blocks (```text, ```toml) are never run.
- Each line of a block is one command (a trailing backslash continues it); it must exit 0 unless
  its comment says `# exits N`. No output may hold a Python traceback.
- `<!-- readme-test: background -->`: the block's one command starts in the background (the
  reader's first shell); once it prints `started session` or `resumed session` the next block
  runs, then the background command gets SIGINT (Ctrl-C) and must exit as documented (0).
- `--duration N` runs as `--duration 2`, or as S after `<!-- readme-test: duration=S -->`;
  README_TEST_FULL=1 runs every duration as written.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SHORT_DURATION = 2.0
FULL = os.environ.get("README_TEST_FULL") == "1"
BLOCK_TIMEOUT_S = 300.0
STARTED = re.compile(r"\b(started|resumed) session \d+")
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
EXITS = re.compile(r"#.*\bexits (\d+)\b")
DURATION = re.compile(r"--duration[ =](\d+(?:\.\d+)?)")
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Command:
    text: str
    expected: int


@dataclass
class Block:
    line: int  # the README line of the opening fence
    source: str
    commands: list[Command] = field(default_factory=list)
    skip: str | None = None
    background: bool = False
    duration: float | None = None

    def where(self) -> str:
        return f"README.md:{self.line}:\n```sh\n{self.source}\n```"


class ReadmeError(Exception):
    """README.md breaks its own test conventions."""


def parse(text: str) -> list[Block]:
    """The ```sh blocks of text, with their markers and commands."""
    lines = text.splitlines()
    blocks: list[Block] = []
    used_markers: set[int] = set()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ReadmeError(f"README.md:{i + 1}: a code block that never closes")
        if fence.group(1) == "sh":
            block = Block(i + 1, "\n".join(lines[i + 1:end]))
            k = i - 1
            while k >= 0 and (marker := MARKER.match(lines[k])):
                _apply_marker(block, marker.group(1), k + 1)
                used_markers.add(k)
                k -= 1
            block.commands = _commands(lines[i + 1:end], i + 2)
            if not block.commands and block.skip is None:
                raise ReadmeError(f"{block.where()}\nhas no command; mark it skip or make it a ```text block")
            if block.background and len(block.commands) != 1:
                raise ReadmeError(f"{block.where()}\na background block holds exactly one command")
            blocks.append(block)
        i = end + 1
    stray = [n + 1 for n, line in enumerate(lines) if MARKER.match(line) and n not in used_markers]
    if stray:
        raise ReadmeError(f"README.md lines {stray}: a readme-test marker must be right before a ```sh block")
    return blocks


def _apply_marker(block: Block, directive: str, line: int) -> None:
    if directive == "skip" or directive.startswith(("skip ", "skip(")):
        reason = re.fullmatch(r"skip\s*\((.*\S.*)\)", directive)
        if reason is None:
            raise ReadmeError(f"README.md:{line}: say why a block is skipped: <!-- readme-test: skip (why) -->")
        block.skip = reason.group(1)
    elif directive == "background":
        block.background = True
    elif directive.startswith("duration="):
        try:
            block.duration = float(directive.removeprefix("duration="))
        except ValueError:
            raise ReadmeError(f"README.md:{line}: duration=S needs a number of seconds") from None
    else:
        raise ReadmeError(f"README.md:{line}: unknown readme-test marker {directive!r} "
                          "(known: skip (why), background, duration=S)")


def _commands(body: list[str], first_line: int) -> list[Command]:
    commands: list[Command] = []
    pending = ""
    for raw in body:
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        if not text or text.startswith("#"):
            continue
        exits = EXITS.search(text)
        commands.append(Command(text, int(exits.group(1)) if exits else 0))
    if pending:
        raise ReadmeError(f"README.md:{first_line + len(body) - 1}: a continued line with nothing after it")
    return commands


def _shorten(command: str, block: Block) -> str:
    if FULL:
        return command
    seconds = block.duration if block.duration is not None else SHORT_DURATION
    return DURATION.sub(f"--duration {seconds:g}", command)


def _workdir(tmp_path: Path) -> Path:
    """A reader's checkout as far as the README's commands can tell: config.toml, the bar generator and
    .venv/bin/{paperdesk,python} running this checkout."""
    work = tmp_path / "desk"
    (work / "bench").mkdir(parents=True)
    shutil.copy(REPO / "config.toml", work / "config.toml")
    shutil.copy(REPO / "bench" / "make_bars.py", work / "bench" / "make_bars.py")
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    path = f"PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}"
    python = shlex.quote(sys.executable)
    for name, target in (("paperdesk", f"{python} -m console.cli"), ("python", python)):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\n{path} exec {target} "$@"\n')
        script.chmod(0o755)
    return work


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "README_TEST_FULL"}
    env["PYTHONUNBUFFERED"] = "1"  # a background session's first lines arrive while it runs
    return env


def _script(block: Block) -> str:
    """The block as one bash script that reports each command's exit status on a line of its own."""
    parts = []
    for index, command in enumerate(block.commands):
        parts.append(f"echo '@@readme-test {index} start'")
        parts.append(_shorten(command.text, block))
        parts.append(f"echo \"@@readme-test {index} exit $?\"")
    return "\n".join(parts) + "\n"


def _outputs(block: Block, output: str) -> tuple[dict[int, str], dict[int, int]]:
    texts: dict[int, list[str]] = {}
    codes: dict[int, int] = {}
    current = None
    for line in output.splitlines():
        start = re.fullmatch(r"@@readme-test (\d+) start", line)
        done = re.fullmatch(r"@@readme-test (\d+) exit (\d+)", line)
        if start:
            current = int(start.group(1))
            texts[current] = []
        elif done:
            codes[int(done.group(1))] = int(done.group(2))
            current = None
        elif current is not None:
            texts[current].append(line)
    return {k: "\n".join(v) for k, v in texts.items()}, codes


def _run_block(block: Block, work: Path) -> None:
    proc = subprocess.Popen(["bash", "-c", _script(block)], cwd=work, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{block.where()}\ndid not finish within {BLOCK_TIMEOUT_S:g} s; output:\n{output}")
    texts, codes = _outputs(block, output)
    for index, command in enumerate(block.commands):
        code = codes.get(index)
        text = texts.get(index, "")
        if code != command.expected or TRACEBACK in text:
            ran = _shorten(command.text, block)
            pytest.fail(f"{block.where()}\ncommand: {ran}\nexpected exit {command.expected}, got "
                        f"{'no exit (the script stopped before it)' if code is None else code}"
                        f"{'; its output holds a traceback' if TRACEBACK in text else ''}\noutput:\n{text}"
                        f"\n\nthe whole block's output:\n{output}")


class Background:
    """The reader's first shell: one command running while the next block runs in another."""

    def __init__(self, block: Block, work: Path) -> None:
        self.block = block
        self.command = block.commands[0]
        self.proc = subprocess.Popen(["bash", "-c", "exec " + _shorten(self.command.text, block)], cwd=work,
                                     env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.started = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if STARTED.search(line):
                self.started.set()
        self.started.set()  # ended before starting: the wait below sees it has exited

    def wait_started(self, timeout: float = 60.0) -> None:
        self.started.wait(timeout)
        if self.proc.poll() is not None or not any(STARTED.search(line) for line in self.lines):
            self.kill()
            pytest.fail(f"{self.block.where()}\ndid not start a session (exit {self.proc.poll()}); output:\n"
                        + "\n".join(self.lines))

    def interrupt(self) -> None:
        """Ctrl-C in the first shell."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.block.where()}\ndid not stop within 60 s of SIGINT; output:\n" + "\n".join(self.lines))
        self.reader.join(timeout=10)
        output = "\n".join(self.lines)
        if code != self.command.expected or TRACEBACK in output:
            pytest.fail(f"{self.block.where()}\nafter SIGINT: expected exit {self.command.expected}, got {code}; "
                        f"output:\n{output}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def test_the_readme_follows_its_test_conventions():
    blocks = parse(README.read_text(encoding="utf-8"))
    assert any(b.skip for b in blocks)
    assert sum(1 for b in blocks if not b.skip) >= 5
    first = README.read_text(encoding="utf-8").split("```sh\n", 1)[1].split("```", 1)[0]
    assert first.splitlines()[0].startswith("make run") and first.splitlines()[1].startswith("make test"), \
        "README.md starts with `make run` and `make test`"


def test_the_command_reference_names_every_command():
    from console.cli import _parser

    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    reference = README.read_text(encoding="utf-8").split("## Command reference", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in subparsers.choices if f"`{name}" not in reference]
    assert not missing, f"README.md's command reference lacks {missing}"


def test_the_parser_refuses_what_the_conventions_do_not_allow():
    with pytest.raises(ReadmeError, match="unknown readme-test marker"):
        parse("<!-- readme-test: skipp -->\n```sh\nls\n```\n")
    with pytest.raises(ReadmeError, match="say why"):
        parse("<!-- readme-test: skip -->\n```sh\nls\n```\n")
    with pytest.raises(ReadmeError, match="right before"):
        parse("<!-- readme-test: background -->\n\ntext\n```sh\nls\n```\n")
    blocks = parse("<!-- readme-test: duration=7 -->\n```sh\na --duration 60 \\\n  --x  # exits 2: why\n"
                   "# note\nb\n```\n```text\nnot run\n```\n")
    assert [(c.text, c.expected) for c in blocks[0].commands] == [("a --duration 60    --x  # exits 2: why", 2),
                                                                  ("b", 0)]
    assert _shorten(blocks[0].commands[0].text, blocks[0]).startswith("a --duration 7 ") or FULL


def test_every_readme_command_block_runs_in_order_and_exits_as_documented(tmp_path):
    work = _workdir(tmp_path)
    blocks = [b for b in parse(README.read_text(encoding="utf-8")) if b.skip is None]
    background: Background | None = None
    started = time.monotonic()
    try:
        for block in blocks:
            if block.background:
                assert background is None, f"{block.where()}\ntwo background blocks in a row"
                background = Background(block, work)
                background.wait_started()
                continue
            begun = time.monotonic()
            _run_block(block, work)
            print(f"README.md:{block.line}: {len(block.commands)} commands in {time.monotonic() - begun:.1f} s")
            if background is not None:
                background.interrupt()
                background = None
    finally:
        if background is not None:
            background.kill()
    assert background is None
    print(f"README blocks ran in {time.monotonic() - started:.1f} s")
