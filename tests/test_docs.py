"""Every code block of README.md and docs/*.md runs as written.

A block runs in the order of its page, in one temporary folder per page (so a later block may use
what an earlier one wrote), offline and with no API key; the folder has links to the repository's
``tests``, ``scenarios`` and ``examples`` so that paths the docs name resolve:

- ``python`` blocks run as a script in a fresh interpreter, with warnings as errors;
- ``bash``/``sh`` blocks, and the ``$`` lines of ``console`` blocks, run in bash when every command
  is an ``envsim`` command (sizes in the docs are kept small enough for this);
- a ``yaml`` block that is a whole scenario (top-level ``id:`` and ``toolkits:``) must pass
  ``envsim validate``;
- other ``yaml`` blocks, and ``toml``, ``json`` and ``text`` blocks, are fragments of data and are not run.

A block that cannot run here (it installs packages, needs a corpus, calls a model provider, trains a
model or needs a server left running) says so in the Markdown, on the line before its fence:
``<!-- docs-test: skip (the reason) -->``. Such a block is not collected as a test at all (the suite
has no skips); instead one test checks that every marker sits right before a block and gives a
reason, and another that each reason is one of :data:`REASON_KINDS`. An unmarked block that fails
fails its test, which is named after the file and line of the block.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
"""The Markdown files whose code blocks are checked."""

RUN = {"python", "bash", "sh", "shell", "console"}
DATA = {"yaml", "toml", "json", "jsonl", "text"}
LINKED = ("tests", "scenarios", "examples")
"""Repository folders linked into each page's folder, for the paths the docs name."""

TIMEOUT_S = 120
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
_SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
_MARKER = re.compile(r"^\s*<!--.*docs-test")
REASON_KINDS = {
    "installs packages": re.compile(r"\binstalls\b"),
    "needs a corpus": re.compile(r"\bcorp(?:us|ora)\b"),
    "calls a model provider": re.compile(r"\bmodel provider\b"),
    "trains a model": re.compile(r"\btrains\b"),
    "needs a running server": re.compile(r"\brunning\b"),
}
"""The kinds of reason a block may be left out for, each recognised by a word of the reason."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    lang: str
    code: str
    skip: str | None
    closed: bool = True

    @property
    def where(self) -> str:
        """``file:line`` of the opening fence, relative to the repository."""
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The page's fenced code blocks, each with the skip reason marked before it (or ``None``)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent = len(fence["indent"])
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marked = _SKIP.match(before)
        reason = marked["reason"].strip() if marked else None
        found.append(Block(page, i + 1, fence["lang"], code, reason, closed=end < len(lines)))
        i = end + 1
    return found


def is_scenario(block: Block) -> bool:
    """Whether a block is a whole scenario file (top-level ``id:`` and ``toolkits:``)."""
    return block.lang == "yaml" and all(re.search(rf"^{key}:", block.code, re.M) for key in ("id", "toolkits"))


def runnable(found: list[Block]) -> list[Block]:
    """The blocks that run: code and whole scenarios, less the blocks marked as not runnable here."""
    return [block for block in found if (block.lang in RUN or is_scenario(block)) and block.skip is None]


ALL = [block for page in PAGES for block in blocks(page)]
RUNNABLE = runnable(ALL)


def commands(block: Block) -> list[str]:
    """The shell commands of a bash or console block: continuation lines joined, comments kept."""
    lines = block.code.splitlines()
    if block.lang == "console":
        picked: list[str] = []
        cont = False
        for line in lines:
            if line.startswith("$ ") or cont:
                picked.append(line[2:] if line.startswith("$ ") and not cont else line)
                cont = line.rstrip().endswith("\\")
        lines = picked
    joined = "\n".join(lines).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def offline_env() -> dict[str, str]:
    """The environment of a block: this interpreter's scripts first, no API keys, no downloads."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True"
    )
    env.pop("ENVSIM_SCENARIOS", None)
    return env


@dataclass
class PageRun:
    """A page's folder and the outcome of each of its blocks run so far (True: passed)."""

    folder: Path
    done: dict[int, bool] = field(default_factory=dict)


@pytest.fixture(scope="session")
def page_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, PageRun]:
    """One folder per page, shared by its blocks, made when its first block runs."""
    return {}


def _folder(runs: dict[Path, PageRun], page: Path, factory: pytest.TempPathFactory) -> PageRun:
    if page not in runs:
        folder = factory.mktemp(page.stem)
        for name in LINKED:
            (folder / name).symlink_to(REPO / name, target_is_directory=True)
        runs[page] = PageRun(folder)
    return runs[page]


def execute(block: Block, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run one block in ``folder``; its completed process."""
    if block.lang == "python":
        script = folder / f"block_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        args = [sys.executable, "-W", "error", script.name]
    elif block.lang == "yaml":
        scenario = folder / f"scenario_{block.line}.yaml"
        scenario.write_text(block.code, encoding="utf-8")
        args = ["envsim", "validate", scenario.name]
    else:
        cmds = commands(block)
        others = [c for c in cmds if shlex.split(c, comments=True)[:1] != ["envsim"]]
        if others:
            pytest.fail(
                f"{block.where}: only envsim commands run in the docs test, not {others[0]!r}: "
                "mark the block <!-- docs-test: skip (why) -->"
            )
        args = ["bash", "-euo", "pipefail", "-c", "\n".join(cmds)]
    return subprocess.run(
        args, cwd=folder, env=offline_env(), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


def _run(block: Block, run: PageRun) -> None:
    """Run ``block`` (once) and record whether it passed; fail with its output if not."""
    if block.line in run.done:
        if not run.done[block.line]:
            pytest.fail(f"{block.where} failed earlier")
        return
    run.done[block.line] = False
    done = execute(block, run.folder)
    if done.returncode != 0:
        pytest.fail(
            f"{block.where} ({block.lang}) exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    run.done[block.line] = True


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_the_code_block_runs(
    block: Block, page_runs: dict[Path, PageRun], tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = _folder(page_runs, block.page, tmp_path_factory)
    for earlier in RUNNABLE:
        if earlier.page == block.page and earlier.line < block.line:
            _run(earlier, run)
    _run(block, run)


def test_every_block_is_labelled_with_a_language_this_test_knows() -> None:
    unknown = [f"{b.where}: {b.lang or '(none)'}" for b in ALL if b.lang not in RUN | DATA]
    assert unknown == []


def test_every_block_is_closed_by_a_bare_fence() -> None:
    unclosed = [b.where for b in ALL if not b.closed]
    assert unclosed == []


def test_every_docs_test_marker_is_a_skip_with_a_reason_before_a_block() -> None:
    placed = {(b.page, b.line) for b in ALL if b.skip is not None}
    stray = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not _MARKER.search(line):
                continue
            after = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), None)
            if _SKIP.match(line) is None or after is None or (page, after + 1) not in placed:
                stray.append(f"{page.relative_to(REPO)}:{i + 1}")
    assert stray == []


def test_a_marked_block_is_left_out_and_an_unmarked_one_runs(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: skip (calls a model provider) -->\n```python\nask()\n```\n\n```python\nprint(1)\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.line, b.skip) for b in found] == [(2, "calls a model provider"), (6, None)]
    assert [b.line for b in runnable(found)] == [6]


def test_every_left_out_block_gives_a_reason_of_a_known_kind() -> None:
    left_out = [
        (b.where, b.skip, [k for k, word in REASON_KINDS.items() if word.search(b.skip)]) for b in ALL if b.skip
    ]
    listing = "\n".join(f"{where}: {reason} -> {kinds or 'no known kind'}" for where, reason, kinds in left_out)
    unknown = [where for where, _, kinds in left_out if not kinds]
    assert unknown == [], f"reasons of no kind in {sorted(REASON_KINDS)}:\n{listing}"


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    readme = [b.code.strip() for b in blocks(REPO / "README.md") if b.lang == "bash"]
    assert command in readme


_PATH = re.compile(r"`((?:envsim|tests|bench|tools_mock|scenarios|examples|\.ci)/[\w./-]*(?:\.\w+|/))`")
"""A repository path in backticks: a file with its extension, or a folder ending in ``/``."""
_DOTTED = re.compile(r"`(envsim(?:\.\w+)+)")
"""A dotted name in backticks: a module, or a name in a module."""


def _names(dotted: str) -> str | None:
    """Why ``dotted`` does not resolve, or None: a module, or a name found in the longest module prefix's source."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:cut])
        source = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if not source.is_file():
            continue
        rest = parts[cut:]
        if not rest or re.search(rf"\b{rest[0]}\b", source.read_text()):
            return None
        return f"{rest[0]} is not defined in {source.relative_to(REPO)}"
    return "no such module"


def test_every_path_and_module_the_docs_name_exists() -> None:
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for path in sorted(set(_PATH.findall(text))):
            if not (REPO / path).exists():
                missing.append(f"{page.relative_to(REPO)}: {path}")
        for dotted in sorted(set(_DOTTED.findall(text))):
            why = _names(dotted)
            if why is not None:
                missing.append(f"{page.relative_to(REPO)}: {dotted} ({why})")
    assert missing == []
