"""Document discovery and text extraction: .txt, .md, .html and .pdf into plain paragraphs.

Each format goes through a well-kept parser (markdown-it-py, BeautifulSoup with html.parser, pypdf) so markup
never reaches the embedder or the caller's ear. Paragraphs are kept apart because the chunker cuts on them
first. A file that cannot be read or holds no text raises `Unreadable`: the build reports it and carries on.
"""
from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from knowledge.errors import KnowledgeError

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
_BLANK_LINE = re.compile(r"\n\s*\n")
_BULLET_LINE = re.compile(r"\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_SPACES = re.compile(r"\s+")
_HTML_BLOCKS = (
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre", "li", "dt", "dd",
    "tr", "table", "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "address", "details", "summary",
)


class Unreadable(Exception):
    """A file skipped with a reason (unreadable, not text, no text)."""


@dataclass(frozen=True)
class SourceFile:
    """A file to index: `name` is how hits cite it (its path relative to the directory given, or its name)."""

    name: str
    path: Path


def discover(paths: list[Path]) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Supported files under `paths` (sorted, hidden entries ignored) and (path, reason) for files skipped.

    A path that does not exist is a KnowledgeError: it is a typo, not a file to skip.
    """
    found: dict[str, SourceFile] = {}
    skipped: list[tuple[str, str]] = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise KnowledgeError(f"{root}: no such file or directory")
        if root.is_dir():
            candidates = [
                (p.relative_to(root).as_posix(), p)
                for p in sorted(root.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
            ]
        else:
            candidates = [(root.name, root)]
        for name, path in candidates:
            if path.suffix.lower() not in SUFFIXES:
                skipped.append((str(path), f"unsupported file type (supported: {', '.join(SUFFIXES)})"))
            elif name in found and found[name].path.resolve() != path.resolve():
                skipped.append((str(path), f"another file is already indexed as {name!r}; rename one of them"))
            else:
                found[name] = SourceFile(name, path)
    return sorted(found.values(), key=lambda f: f.name), skipped


def extract_paragraphs(path: Path, data: bytes) -> list[str]:
    """Plain-text paragraphs of the file's `data`, chosen by its suffix; raises Unreadable when there are none."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        paragraphs = _pdf(data)
    else:
        text = _decode(data)
        if suffix in (".md", ".markdown"):
            paragraphs = _markdown(text)
        elif suffix in (".html", ".htm"):
            paragraphs = _html(text)
        else:
            paragraphs = _plain(text)
    paragraphs = [p for p in (_SPACES.sub(" ", p).strip() for p in paragraphs) if p]
    if not paragraphs:
        raise Unreadable("empty: no text to index")
    return paragraphs


def _decode(data: bytes) -> str:
    """UTF-8 (BOM allowed), else cp1252, the usual encoding of text files saved on Windows in France."""
    if b"\x00" in data:
        raise Unreadable("not a text file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise Unreadable(f"neither UTF-8 nor cp1252 text (byte {exc.object[exc.start]:#04x} at {exc.start})") from None


def _plain(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [piece for block in _BLANK_LINE.split(text) for piece in _BULLET_LINE.split(block)]


def _markdown(text: str) -> list[str]:
    """One paragraph per heading, paragraph, list item or code block; a table row becomes one line."""
    from markdown_it import MarkdownIt

    paragraphs: list[str] = []
    row: list[str] | None = None
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            paragraphs.append(" ; ".join(cell for cell in row if cell))
            row = None
        elif token.type == "inline":
            words = "".join(
                child.content if child.type in ("text", "code_inline") else " "
                for child in token.children or []
                if child.type in ("text", "code_inline", "softbreak", "hardbreak")
            )
            if row is not None:
                row.append(words.strip())
            else:
                paragraphs.append(words)
        elif token.type in ("fence", "code_block"):
            paragraphs.append(token.content)
        elif token.type == "html_block":
            paragraphs.extend(_html(token.content))
    return paragraphs


def _html(text: str) -> list[str]:
    """Text of the body, one paragraph per block element; scripts, styles, head, navigation and footer dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head", "svg", "nav", "footer"]):
        tag.decompose()
    for tag in soup.find_all(_HTML_BLOCKS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    for tag in soup.find_all(["br", "td", "th"]):
        tag.insert_after(" ; " if tag.name != "br" else "\n")
    return _BLANK_LINE.split(soup.get_text())


def _pdf(data: bytes) -> list[str]:
    """Text of every page; layout mode keeps vertical gaps as blank lines, which separate paragraphs."""
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("encrypted PDF (remove the password and index it again)")
        pages = [page.extract_text(extraction_mode="layout") or "" for page in reader.pages]
    except Unreadable:
        raise
    except Exception as exc:  # a damaged PDF fails in many ways (struct, zlib, key errors...): skip the file
        raise Unreadable(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    return [block for page in pages for block in _BLANK_LINE.split(page.replace("\r\n", "\n"))]


def read_file(source: SourceFile) -> bytes:
    """The file's bytes; an OS error (permissions, vanished file) becomes Unreadable."""
    try:
        return source.path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
