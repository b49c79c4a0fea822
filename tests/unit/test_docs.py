"""The documentation's command examples cannot drift: every ``bash`` block of docs/ is a script
of docs/examples/ (which tests/integration/test_docs_examples.py runs) or says why it is not
run (and is still valid bash), and every ``idds`` command in any block or transcript names
sub-commands and options that exist."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest

from idds.cli import cli as main

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
SCRIPTS = DOCS / "examples"
FENCE = re.compile(
    r"(?P<before>(?:<!--[^\n]*-->\n)?)```(?:bash|sh|console)\n(?P<body>.*?)```", re.S
)
INCLUDE = re.compile(r'^--8<-- "(docs/examples/[^"]+\.sh)"$')
NOT_RUN = re.compile(r"<!-- not run: .+ -->")
GLOBAL_OPTIONS = {"--db", "--ray-address"}


def _blocks() -> list[tuple[str, str, str]]:
    """(page, the comment before the block, the block's text) for every bash block."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for m in FENCE.finditer(page.read_text()):
            found.append((str(page.relative_to(ROOT)), m["before"].strip(), m["body"]))
    return found


BLOCKS = _blocks()


def test_every_bash_block_is_a_script_that_runs_or_says_why_not():
    assert BLOCKS, "no bash block found under docs/"
    for page, before, body in BLOCKS:
        lines = body.strip().splitlines()
        if len(lines) == 1 and INCLUDE.match(lines[0]):
            assert (ROOT / INCLUDE.match(lines[0])[1]).is_file(), (page, lines[0])
            continue
        assert NOT_RUN.fullmatch(before), (
            f"{page}: a bash block neither included nor 'not run':\n{body}"
        )
        check = subprocess.run(["bash", "-n"], input=body, text=True, capture_output=True)
        assert check.returncode == 0, f"{page}: not bash: {check.stderr}\n{body}"


def test_every_example_script_is_shown_on_a_page():
    shown = {INCLUDE.match(b.strip())[1] for _, _, b in BLOCKS if INCLUDE.match(b.strip())}
    scripts = {str(p.relative_to(ROOT)) for p in SCRIPTS.glob("*.sh")}
    assert scripts == shown


def _commands() -> list[tuple[str, list[str]]]:
    texts = [(page, body) for page, _, body in BLOCKS]
    texts += [(str(p.relative_to(ROOT)), p.read_text()) for p in SCRIPTS.glob("*.sh")]
    for page in sorted(DOCS.rglob("*.md")):  # transcripts: `$ idds ...` in any block
        prompts = re.findall(r"^\$ (idds .*)$", page.read_text(), re.M)
        texts += [(str(page.relative_to(ROOT)), line) for line in prompts]
    found = []
    for where, text in texts:
        text = re.sub(r"\\\n", " ", text)
        for line in text.splitlines():
            line = re.sub(r"(^|\s)#.*", "", line)
            for m in re.finditer(r"(?:^|[\s(|;&])idds(?=\s|$)((?:\s+[^\s|;&)]+)*)", line):
                found.append((where, shlex.split(m[1])))
    return found


@pytest.mark.parametrize(
    ("where", "argv"), _commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_every_idds_command_in_the_docs_exists(where, argv):
    command: click.Command = main
    ctx = click.Context(main)
    words = iter(argv)
    for word in words:
        if word in GLOBAL_OPTIONS and command is main:
            next(words)
            continue
        if isinstance(command, click.Group) and not word.startswith("-"):
            sub = command.get_command(ctx, word)
            assert sub is not None, f"{where}: idds {' '.join(argv)}: no sub-command {word!r}"
            command = sub
            continue
        if word.startswith("--"):
            options = {o for p in command.params for o in p.opts + p.secondary_opts}
            assert word.split("=")[0] in options, f"{where}: idds {' '.join(argv)}: no {word}"
    assert not isinstance(command, click.Group), f"{where}: idds {' '.join(argv)}: no command"


def _yaml_blocks() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for m in re.finditer(r"```yaml\n(.*?)```", page.read_text(), re.S):
            if not m[1].startswith("--8<--"):
                found.append((str(page.relative_to(ROOT)), m[1]))
    return found


@pytest.mark.parametrize(("page", "text"), _yaml_blocks(), ids=lambda v: v[:40])
def test_every_spec_in_the_docs_validates(page, text):
    """A sites file, a study, a workflow or a toy scan shown on a page is one the platform
    accepts (the annotated reference spec of a study, with its `{...}` placeholders, aside)."""
    import yaml

    from dag import WorkflowSpec
    from gpu_sites import parse_sites
    from hpo import StudySpec
    from toys import ToyScanSpec

    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "{...}" in text:
        return
    if "sites" in data:
        parse_sites(data, source=page)
    elif "nodes" in data:
        WorkflowSpec.from_mapping(data)
    elif "workspace" in data:
        ToyScanSpec.from_mapping(data, source=page, base_dir=ROOT / "examples" / "toys")
    elif "objective" in data or "command" in data:
        StudySpec.from_mapping(data)
