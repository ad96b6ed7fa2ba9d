"""The documentation's relative links resolve, and the README stays a short entry point.

Every relative link in README.md and docs/**/*.md (inline ``[text](target)``, images, reference definitions and
``<img src>`` / ``<a href>``) must name an existing file or folder, resolved against the file holding the link, and a
``#fragment`` into a markdown file must match one of its headings as GitHub slugs them. Links inside code are not
links and are skipped, as are URLs with a scheme (http, https, mailto, ...).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 250

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ID = re.compile(r"<[a-z][^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The file's lines with fenced code blocks blanked (line numbers kept) and inline code spans emptied."""
    out, fence = [], None
    for line in text.splitlines():
        stripped = line.lstrip()
        m = FENCE.match(line) if fence is None else None
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]).strip():
                fence = None
            out.append("")
        else:
            out.append(CODE_SPAN.sub(lambda c: "code", line))
    return out


def github_slug(heading: str) -> str:
    """GitHub's heading anchor (github-slugger): lowercase; drop every character that is not a letter, number,
    mark, space, '-' or '_'; each space becomes '-'. Markdown links count by their text, HTML tags not at all."""
    text = CODE_SPAN.sub(lambda c: c.group(2), heading)
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    kept = (ch for ch in text.lower() if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives path's headings (duplicates get -1, -2, ...), plus explicit HTML ids / names."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    raw = path.read_text(encoding="utf-8").splitlines()
    lines = prose_lines(path.read_text(encoding="utf-8"))
    for i, line in enumerate(lines):
        m = ATX_HEADING.match(raw[i]) if ATX_HEADING.match(line) else None
        if m:
            title = m.group(2) or ""
        elif (i > 0 and SETEXT_UNDERLINE.match(line) and lines[i - 1].strip()
              and not ATX_HEADING.match(lines[i - 1]) and not lines[i - 1].lstrip().startswith(("|", "-", "*", ">"))):
            title = raw[i - 1].strip()
        else:
            found.update(HTML_ID.findall(line))
            continue
        slug = github_slug(title.strip())
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link in path's prose."""
    found = []
    for number, line in enumerate(prose_lines(path.read_text(encoding="utf-8")), 1):
        hits = [(m.start(), m.group(1)) for pattern in (INLINE_LINK, REFERENCE_DEF, HTML_LINK)
                for m in pattern.finditer(line)]
        found.extend((number, target.strip("<>").strip()) for _, target in sorted(hits))
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """'file:line: target (why)' for every relative link of path that does not resolve."""
    problems = []
    anchor_cache: dict[Path, set[str]] = {}
    for number, target in links(path):
        if not target or SCHEME.match(target):
            continue
        file_part, _, fragment = target.partition("#")
        file_part, fragment = unquote(file_part), unquote(fragment)
        if file_part:
            base = root if file_part.startswith("/") else path.parent
            resolved = (base / file_part.lstrip("/")).resolve()
        else:
            resolved = path.resolve()
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not resolved.exists():
            problems.append(f"{where} (no such file or folder)")
            continue
        if fragment and resolved.is_file() and resolved.suffix.lower() == ".md":
            if resolved not in anchor_cache:
                anchor_cache[resolved] = anchors(resolved)
            if fragment not in anchor_cache[resolved]:
                problems.append(f"{where} (no heading with anchor #{fragment} in {resolved.relative_to(root)})")
    return problems


@pytest.mark.parametrize("heading, slug", [
    ("Label map → photo (SPADE)", "label-map--photo-spade"),
    ("Measured on this project's CPU", "measured-on-this-projects-cpu"),
    ("Running `restore train`", "running-restore-train"),
    ("torch.compile support by critic norm (torch 2.14.1, CPU inductor, gcc 12)",
     "torchcompile-support-by-critic-norm-torch-2141-cpu-inductor-gcc-12"),
    ("Tolerances (tests/engine/test_speed_options.py)", "tolerances-testsenginetest_speed_optionspy"),
    ("Größe & Übersicht", "größe--übersicht"),
    ("1. Per-layer operator norms (SAN paper Fig. 3)", "1-per-layer-operator-norms-san-paper-fig-3"),
    ("See [the docs](docs/x.md) now", "see-the-docs-now"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_checker_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Second part\n\ntext\n", encoding="utf-8")
    doc = tmp_path / "README.md"
    doc.write_text(
        "# Title\n\n## Local → part\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#second-part) [ok](docs/) [ok](#local--part) [web](https://x.org/y)\n"
        "[missing](docs/nope.md) [bad anchor](docs/page.md#third-part) ![img](docs/none.png)\n"
        '<img src="docs/gone.png"> [self](#nowhere)\n\n'
        "```\n[in code](docs/not-a-link.md)\n```\n`[in span](docs/not-a-link.md)`\n",
        encoding="utf-8",
    )
    problems = broken_links(doc, root=tmp_path)
    assert [p.split(": ", 1)[1].split(" (")[0] for p in problems] == [
        "docs/nope.md", "docs/page.md#third-part", "docs/none.png", "docs/gone.png", "#nowhere"]
    assert problems[0].startswith("README.md:6: ")


def test_docs_links_resolve():
    files = markdown_files()
    assert len(files) > 1, "docs/ has no markdown pages"
    problems = [problem for path in files for problem in broken_links(path)]
    assert not problems, "broken links in the documentation:\n" + "\n".join(problems)


def make_target_commands() -> list[str]:
    """`make demo` and `make test`, checked against the Makefile's targets (and the CI script's use of test)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, re.MULTILINE))
    commands = []
    for target in ("demo", "test"):
        assert target in targets, f"the Makefile has no '{target}' target"
        commands.append(f"make {target}")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^\s*make test\b", ci, re.MULTILINE), ".ci/run no longer runs make test"
    return commands


def test_readme_is_short_and_starts_with_the_setup_commands():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES} wanted"
    assert lines and lines[0].startswith("# "), "README.md must start with its title"

    start = next((i for i, line in enumerate(lines) if FENCE.match(line)), None)
    assert start is not None, "README.md has no code block"
    intro = lines[1:start]
    assert not any(ATX_HEADING.match(line) for line in intro), "a section comes before the set-up commands"
    assert any(line.strip() for line in intro), "README.md needs an intro paragraph before the set-up commands"

    end = next(i for i in range(start + 1, len(lines)) if FENCE.match(lines[i]))
    commands = [line.split("#", 1)[0].strip() for line in lines[start + 1:end]]
    assert [c for c in commands if c] == make_target_commands()
