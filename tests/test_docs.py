"""The documentation's examples run against the code, so they cannot drift from it.

* Every ```` ```python ```` block of README.md and docs/*.md is executed: the blocks of one file
  in order, in one namespace (a later block may use names from an earlier one), inside a
  temporary working directory that holds the files the examples name (``face.jpg``,
  ``photo.jpg``, a tiny demo dataset at ``data/demo``, ``my_templates/`` ...). A block preceded
  by ``<!-- docs-test: skip (reason) -->`` is reported as skipped with that reason. Afterwards
  :data:`CLAIMS` checks what the examples' comments promise (shapes, "replay exactly" ...).
* Every ``occsynth ...`` / ``fer-pi ...`` line of a shell block (```` ``` ````, ``bash``, ``sh``,
  ``console``, ``shell``), and every such inline code span of the prose, is resolved in the click
  groups: the (sub-)command must exist, every ``--option`` / ``-x`` it uses must be an option of
  that command, and a literal value given to a ``click.Choice`` option must be one of its
  choices. Nothing heavy is run. Failures name the doc file and line.

docs/performance.md and docs/results.md are written from measured benchmark files and hold no
runnable examples, so they are left out.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import click
import pytest

REPO = Path(__file__).resolve().parents[1]
EXCLUDED = {"performance.md", "results.md"}
SHELL_LANGS = {"", "bash", "sh", "console", "shell"}
PROGRAMS = ("occsynth", "fer-pi")
LAUNCHERS = {"torchrun"}  # `torchrun ... --no-python fer-pi train ...`
SKIP_MARK = re.compile(r"^\s*<!--\s*docs-test:\s*skip\s*\((?P<reason>.*)\)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


def doc_files(repo: Optional[Path] = None) -> list[Path]:
    """README.md and docs/*.md, minus the measured-results pages."""
    repo = repo or REPO
    docs = sorted(p for p in (repo / "docs").glob("*.md") if p.name not in EXCLUDED)
    return [repo / "README.md", *docs]


# --------------------------------------------------------------------------- block collection
@dataclass
class Block:
    """One fenced code block: ``line`` is the 1-based line of its first code line."""

    path: str
    lang: str
    line: int
    code: str
    skip: Optional[str] = None  # reason from <!-- docs-test: skip (reason) -->


def collect_blocks(text: str, path: str = "<markdown>") -> list[Block]:
    """Fenced code blocks of a markdown text, in order (unterminated fences raise)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m["fence"], i
        skip = None
        if start > 0 and (s := SKIP_MARK.match(lines[start - 1])):
            skip = s["reason"].strip() or "no reason given"
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{start + 1}: code fence is never closed")
        blocks.append(Block(path, m["lang"].lower(), start + 2, "\n".join(lines[start + 1:j]) + "\n", skip))
        i = j + 1
    return blocks


# --------------------------------------------------------------------------- shell lines
def shell_commands(block: Block) -> list[tuple[int, list[str]]]:
    """``(line, argv)`` for every ``occsynth``/``fer-pi`` command of a shell block.

    A leading ``$ `` prompt and backslash continuations are handled, ``# comments`` dropped,
    and the ``[...]`` brackets of synopsis lines (``[--seed 0]``) removed. ``argv[0]`` is the
    program.
    """
    out, lines, k = [], block.code.splitlines(), 0
    while k < len(lines):
        first, text = k, lines[k]
        while text.rstrip().endswith("\\") and k + 1 < len(lines):
            k += 1
            text = text.rstrip()[:-1] + " " + lines[k]
        k += 1
        text = text.strip()
        if text.startswith("$ "):
            text = text[2:].lstrip()
        words = text.split()
        if not words or (words[0] not in PROGRAMS and words[0] not in LAUNCHERS):
            continue
        try:
            argv = shlex.split(text, comments=True)
        except ValueError as exc:
            raise AssertionError(f"{block.path}:{block.line + first}: cannot split shell line ({exc})") from None
        argv = [w.strip("[]") for w in argv]
        argv = [w for w in argv if w]
        starts = [n for n, w in enumerate(argv) if w in PROGRAMS]
        if starts:
            out.append((block.line + first, argv[starts[0]:]))
    return out


INLINE = re.compile(r"`((?:%s) [^`]*)`" % "|".join(map(re.escape, PROGRAMS)))


def inline_commands(text: str, path: str = "<markdown>") -> list[tuple[int, list[str]]]:
    """``(line, argv)`` for every inline code span of the prose that is a command
    (`` `occsynth generate --src rafdb ...` ``); lines inside fenced blocks are not prose."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m["fence"]
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        for span in INLINE.findall(line):
            try:
                argv = [w.strip("[]") for w in shlex.split(span)]
            except ValueError as exc:
                raise AssertionError(f"{path}:{number}: cannot split `{span}` ({exc})") from None
            out.append((number, [w for w in argv if w]))
    return out


def _groups() -> dict[str, click.Group]:
    from fer_pi.cli import cli as fer_cli
    from occlusion_synth.cli import cli as occ_cli

    return {"occsynth": occ_cli, "fer-pi": fer_cli}


def _is_placeholder(value: str) -> bool:
    """Values a doc writes for the reader to fill in: $VAR, NAME, <path>, ..."""
    return ("$" in value or "..." in value or "<" in value or value.isupper()
            or value.startswith("-"))


def check_command(argv: list[str], where: str, groups: Optional[dict[str, click.Group]] = None) -> None:
    """Raise AssertionError (naming ``where``) unless ``argv`` is a valid use of the CLI.

    Checks that the command (and sub-command of a group) exists, that every option used is an
    option of that command (``--opt=value`` too), and that literal values of ``click.Choice``
    options are valid choices.
    """
    groups = groups or _groups()
    prog, rest = argv[0], argv[1:]
    command: click.Command = groups[prog]
    path = [prog]
    while isinstance(command, click.Group):
        if not rest or rest[0].startswith("-"):
            if rest and rest[0] in ("--help", "-h", "--version"):
                return
            raise AssertionError(f"{where}: `{' '.join(path)}` needs a sub-command "
                                 f"(one of {', '.join(command.list_commands(click.Context(command)))})")
        name, rest = rest[0], rest[1:]
        sub = command.get_command(click.Context(command, info_name=path[-1]), name)
        if sub is None:
            known = ", ".join(command.list_commands(click.Context(command)))
            raise AssertionError(f"{where}: `{' '.join(path)} {name}`: no such command (known: {known})")
        command, path = sub, path + [name]
    ctx = click.Context(command, info_name=" ".join(path))
    options: dict[str, click.Option] = {}
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                options[opt] = param
    shown = f"`{' '.join(path)}`"
    k = 0
    while k < len(rest):
        word = rest[k]
        k += 1
        if word in ("-", "--") or not word.startswith("-") or re.fullmatch(r"-\d[\d.]*", word):
            continue
        name, eq, inline = word.partition("=")
        param = options.get(name)
        if param is None:
            known = ", ".join(sorted(o for o in options if o.startswith("--")))
            raise AssertionError(f"{where}: {shown} has no option {name} (its options: {known})")
        if param.is_flag or param.count:
            if eq:
                raise AssertionError(f"{where}: {shown} {name} is a flag and takes no value")
            continue
        values = [inline] if eq else rest[k:k + max(param.nargs, 1)]
        if not eq:
            k += len(values)
        if isinstance(param.type, click.Choice):
            for value in values:
                if not _is_placeholder(value) and value not in param.type.choices:
                    raise AssertionError(f"{where}: {shown} {name} {value!r} is not one of "
                                         f"{', '.join(map(str, param.type.choices))}")


def _shell_cases():
    for doc in doc_files():
        rel = doc.relative_to(REPO).as_posix()
        for block in collect_blocks(doc.read_text(encoding="utf-8"), rel):
            if block.lang in SHELL_LANGS:
                for line, argv in shell_commands(block):
                    yield pytest.param(f"{rel}:{line}", argv, id=f"{rel}:{line}")
        for line, argv in inline_commands(doc.read_text(encoding="utf-8"), rel):
            yield pytest.param(f"{rel}:{line}", argv, id=f"{rel}:{line}:inline-{argv[1] if len(argv) > 1 else ''}")


@pytest.mark.parametrize("where,argv", list(_shell_cases()))
def test_shell_example_matches_the_cli(where, argv):
    check_command(argv, where)


# --------------------------------------------------------------------------- python blocks
def _python_cases():
    for doc in doc_files():
        rel = doc.relative_to(REPO).as_posix()
        blocks = [b for b in collect_blocks(doc.read_text(encoding="utf-8"), rel) if b.lang in ("python", "py")]
        for index, block in enumerate(blocks):
            yield pytest.param(rel, index, id=f"{rel}:{block.line}")


@pytest.fixture(scope="module")
def docs_workspace(tmp_path_factory, photos) -> Path:
    """The files the examples name, built once: copied per doc file by :func:`_FileRun`."""
    from PIL import Image

    from occlusion_synth.demodata import build_demo_dataset
    from occlusion_synth.io import read_image
    from occlusion_synth.landmarks import detect

    root = tmp_path_factory.mktemp("docs_workspace")
    with Image.open(photos["obama.jpg"]) as im:
        im = im.convert("RGB")
        im.thumbnail((400, 400))
        for name in ("face.jpg", "photo.jpg"):
            im.save(root / name, quality=92)
    face = detect(read_image(root / "face.jpg"), backend="dlib", name="face.jpg")[0]
    (root / "face.json").write_text(json.dumps({"landmarks": face.landmarks.tolist()}))
    build_demo_dataset(root / "data" / "demo", per_class=2, test_per_class=1, size=64, seed=0,
                       cache_dir=REPO / ".cache")
    shutil.copy(root / "data" / "demo" / "Image" / "aligned" / "train_00001_aligned.jpg", root / "crop.jpg")
    assets = REPO / "assets"
    for category in ("hand", "mask", "food"):
        (root / "my_templates" / category).mkdir(parents=True)
        for png in sorted((assets / category).glob("*.png"))[:2]:
            for f in (png, png.with_suffix(".json")):
                if f.exists():
                    shutil.copy(f, root / "my_templates" / category / f.name)
    return root


class _FileRun:
    """State of one doc file: its namespace, working directory and how far it got."""

    def __init__(self, rel: str, workspace: Path, tmp: Path):
        self.rel = rel
        self.blocks = [b for b in collect_blocks((REPO / rel).read_text(encoding="utf-8"), rel)
                       if b.lang in ("python", "py")]
        self.cwd = tmp / rel.replace("/", "_")
        shutil.copytree(workspace, self.cwd)
        self.namespace: dict = {"__name__": "__docs__"}
        self.done = 0
        self.failed: Optional[int] = None

    def run_until(self, index: int) -> None:
        """Execute blocks ``done..index`` (in order) in the shared namespace, inside ``cwd``."""
        if self.done == 0:  # examples that draw from the global generators run the same every time
            import random

            import numpy as np
            import torch

            random.seed(0)
            np.random.seed(0)
            torch.manual_seed(0)
        old = os.getcwd()
        os.chdir(self.cwd)
        try:
            while self.done <= index:
                block = self.blocks[self.done]
                if self.failed is not None:
                    pytest.skip(f"not run: the earlier block at {self.rel}:{self.blocks[self.failed].line} failed")
                if block.skip is not None:
                    self.done += 1
                    if self.done > index:
                        pytest.skip(f"{self.rel}:{block.line}: {block.skip}")
                    continue
                # pad so tracebacks point at the markdown line
                code = compile("\n" * (block.line - 1) + block.code, str(REPO / self.rel), "exec")
                try:
                    exec(code, self.namespace)
                except BaseException:
                    self.failed = self.done
                    raise
                finally:
                    self.done += 1
        finally:
            os.chdir(old)


@pytest.fixture(scope="module")
def _file_runs() -> dict[str, _FileRun]:
    """``{doc file: _FileRun}`` shared by the example and claim tests of this module."""
    return {}


def _file_run(rel: str, runs: dict, workspace: Path, tmp_path_factory) -> _FileRun:
    if rel not in runs:
        runs[rel] = _FileRun(rel, workspace, tmp_path_factory.mktemp("docs_run"))
    return runs[rel]


@pytest.mark.parametrize("rel,index", list(_python_cases()))
def test_python_example_runs(rel, index, docs_workspace, _file_runs, tmp_path_factory):
    run = _file_run(rel, _file_runs, docs_workspace, tmp_path_factory)
    run.run_until(index)


# What the examples' comments promise, checked in the namespace once all blocks of the file ran
# (expressions, so a claim that stops holding fails with the expression in the message).
CLAIMS = {
    "README.md": [
        "image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3",
        "face.landmarks.shape == (68, 2)",
        "out['image'].shape == image.shape and out['mask'].shape == image.shape[:2]",
        "set(np.unique(out['mask'])) <= {0, 255} and out['mask'].any()",
        "json.loads(json.dumps(out['params'].to_dict()))['category'] in ('mask', 'food', 'hand')",
        "x.dtype == torch.float32 and x.shape[0] == 3 and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0",
    ],
    "docs/datasets.md": [
        "summary.new_pairs == 21 and summary.skipped_by_reason == {}",
        "Path('merged/manifest.csv').read_bytes() == Path('pairs/manifest.csv').read_bytes()",
    ],
    "docs/landmarks.md": [
        "face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32",
        "face.box.shape == (4,) and face.backend in ('dlib', 'aligned', 'mediapipe', 'provided')",
        "detect(crop, 'aligned')[0].landmarks.shape == (68, 2)",
        "np.allclose(detect(image, 'provided', provided='face.json')[0].landmarks,"
        " json.loads(Path('face.json').read_text())['landmarks'])",
        "get_backend('mediapipe').detect(np.zeros((64, 64, 3), np.uint8)) == []",
    ],
    "docs/occluders.md": [
        "np.array_equal(occluded, out['image']) and np.array_equal(mask, out['mask'])",
        "json.loads(json.dumps(out['params'].to_dict()))['category'] in ('mask', 'hand')",
        "x.dtype == torch.float32 and x.shape[0] == 3",
    ],
    "docs/templates.md": [
        "lib.categories() == ['hand', 'mask']",
        "tpl.rgba.dtype == np.uint8 and tpl.rgba.shape[2] == 4",
        "len(idx) == len(pts) > 0 and pts.shape[1] == 2",
        "tpl.scale_range[0] <= tpl.scale_range[1]",
        "problems == []",
    ],
}


@pytest.mark.parametrize("rel", sorted(CLAIMS))
def test_python_example_claims(rel, docs_workspace, _file_runs, tmp_path_factory):
    import numpy as np
    import torch

    run = _file_run(rel, _file_runs, docs_workspace, tmp_path_factory)
    if any(b.skip for b in run.blocks):
        pytest.skip(f"{rel} has skipped blocks")
    run.run_until(len(run.blocks) - 1)
    env = {"np": np, "torch": torch, "json": json, "Path": Path, **run.namespace}
    old = os.getcwd()
    os.chdir(run.cwd)
    try:
        for claim in CLAIMS[rel]:
            assert eval(claim, env), f"{rel}: the example no longer gives what its comments say: {claim}"
    finally:
        os.chdir(old)


def test_examples_found():
    """The collectors see the docs' examples (guards against a regex that silently matches nothing)."""
    py = list(_python_cases())
    sh = list(_shell_cases())
    assert len(py) >= 5 and len(sh) >= 15, (len(py), len(sh))
    assert {p.values[0] for p in py} >= {"README.md", "docs/landmarks.md", "docs/templates.md"}


# --------------------------------------------------------------------------- the checker itself
SYNTHETIC = """\
Some prose.

```
$ occsynth generate --src rafdb --root data/demo \\
    --out out --wrokers 2        # typo on the continuation line
occsynth preview --src photo.jpg -n 8 -o sheet.png
```

<!-- docs-test: skip (needs a GPU) -->
```python
import torch; torch.zeros(1).cuda()
```

```bash
fer-pi train --data m.csv --preset fulll
occsynth templates biuld
occsynth nosuch --x
occsynth landmarks photo.jpg --backend=mediapipe --draw out/
```
"""


def test_collector_reads_blocks_lines_and_skip_marks():
    blocks = collect_blocks(SYNTHETIC, "syn.md")
    assert [(b.lang, b.line) for b in blocks] == [("", 4), ("python", 11), ("bash", 15)]
    assert blocks[1].skip == "needs a GPU" and blocks[0].skip is None
    cmds = shell_commands(blocks[0])
    assert [(line, argv[:2]) for line, argv in cmds] == [(4, ["occsynth", "generate"]), (6, ["occsynth", "preview"])]
    assert "--wrokers" in cmds[0][1] and "#" not in " ".join(cmds[0][1])
    with pytest.raises(ValueError, match="syn.md:1: code fence is never closed"):
        collect_blocks("```\nocc", "syn.md")


def test_inline_commands_of_the_prose_are_checked_too():
    text = ("Run `occsynth generate --src rafdb --bogus 1` then `fer-pi evaluate`.\n"
            "```\n`occsynth not-prose`\n```\n"
            "Or `occsynth templates list [DIR]`.\n")
    spans = inline_commands(text, "syn.md")
    assert [(line, argv[:2]) for line, argv in spans] == [
        (1, ["occsynth", "generate"]), (1, ["fer-pi", "evaluate"]), (5, ["occsynth", "templates"])]
    with pytest.raises(AssertionError, match=r"syn.md:1: `occsynth generate` has no option --bogus"):
        check_command(spans[0][1], "syn.md:1")
    check_command(spans[1][1], "syn.md:1")
    check_command(spans[2][1], "syn.md:5")


def test_checker_rejects_drift_and_names_file_and_line():
    blocks = collect_blocks(SYNTHETIC, "syn.md")
    (l1, bad_opt), (l2, good) = shell_commands(blocks[0])
    with pytest.raises(AssertionError, match=r"syn.md:4: `occsynth generate` has no option --wrokers"):
        check_command(bad_opt, f"syn.md:{l1}")
    check_command(good, f"syn.md:{l2}")  # short options -n/-o are real
    (l3, bad_choice), (l4, bad_sub), (l5, bad_cmd), (l6, ok) = shell_commands(blocks[2])
    with pytest.raises(AssertionError, match=r"syn.md:15: `fer-pi train` --preset 'fulll' is not one of"):
        check_command(bad_choice, f"syn.md:{l3}")
    with pytest.raises(AssertionError, match=r"syn.md:16: `occsynth templates biuld`: no such command"):
        check_command(bad_sub, f"syn.md:{l4}")
    with pytest.raises(AssertionError, match=r"syn.md:17: `occsynth nosuch`: no such command"):
        check_command(bad_cmd, f"syn.md:{l5}")
    check_command(ok, f"syn.md:{l6}")


def test_runner_executes_in_order_and_reports_failures(tmp_path, monkeypatch):
    """A broken python example fails with the doc's file and line in the traceback."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "value.txt").write_text("41")
    doc = tmp_path / "docs" / "scratch.md"
    doc.parent.mkdir()
    doc.write_text("```python\nx = int(open('value.txt').read())\n```\n\ntext\n\n"
                   "```python\nassert x + 1 == 42\ny = undefined_name\n```\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    (tmp_path / "docs" / "skips.md").write_text("<!-- docs-test: skip (needs real AffectNet) -->\n"
                                                 "```python\nraise RuntimeError\n```\n")
    with pytest.raises(pytest.skip.Exception, match=r"docs/skips.md:3: needs real AffectNet"):
        _FileRun("docs/skips.md", ws, tmp_path / "runs").run_until(0)
    run = _FileRun("docs/scratch.md", ws, tmp_path / "runs")
    run.run_until(0)
    assert run.namespace["x"] == 41
    with pytest.raises(NameError) as info:
        run.run_until(1)
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(info.tb)]
    assert (str(doc), 9) in frames, frames
