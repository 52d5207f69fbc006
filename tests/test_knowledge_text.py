"""Loaders, chunking and speakable text: what reaches the embedder and what reaches the caller's ear."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfWriter

from knowledge.chunking import chunk_paragraphs, split_sentences
from knowledge.embedders import get_embedder
from knowledge.sources import EmbedderSpec
from knowledge.errors import KnowledgeError
from knowledge.loaders import SourceFile, Unreadable, discover, extract_paragraphs
from knowledge.speakable import speakable

CORPUS = Path(__file__).resolve().parent.parent / "examples" / "knowledge"


def words(text: str) -> int:
    """A whitespace tokenizer with two special tokens, like [CLS] ... [SEP]."""
    return len(text.split()) + 2


def paragraphs_of(path: Path) -> list[str]:
    return extract_paragraphs(path, path.read_bytes())


def test_markdown_gives_headings_items_and_table_rows_without_markup(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# Title\n\nSome **bold** and `code` [link](http://x).\n\n- item one\n- item two\n\n"
                   "| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
    assert paragraphs_of(doc) == ["Title", "Some bold and code link.", "item one", "item two", "a ; b", "1 ; 2"]


def test_html_keeps_the_body_text_and_drops_scripts_styles_and_navigation(tmp_path):
    doc = tmp_path / "a.html"
    doc.write_text("<html><head><title>T</title><style>p{}</style></head><body><nav>Home &gt; Help</nav>"
                   "<h1>Opening hours</h1><p>Open <b>Monday</b> to Friday.<br>Closed Sunday.</p>"
                   "<script>var x = 1;</script><footer>© Lumio</footer></body></html>", encoding="utf-8")
    assert paragraphs_of(doc) == ["Opening hours", "Open Monday to Friday. Closed Sunday."]


def test_the_shipped_pdf_yields_its_paragraphs():
    paragraphs = paragraphs_of(CORPUS / "faq-fr" / "installation-fibre.pdf")
    assert paragraphs[0] == "Installation de la fibre optique Lumio"
    assert any(p.startswith("Le rendez-vous de raccordement.") and "deux à quatre semaines" in p for p in paragraphs)


def test_text_that_is_not_utf8_is_read_as_cp1252(tmp_path):
    doc = tmp_path / "windows.txt"
    doc.write_bytes("Facture réglée à l'échéance : 12 €.".encode("cp1252"))
    assert paragraphs_of(doc) == ["Facture réglée à l'échéance : 12 €."]


@pytest.mark.parametrize("name, data, reason", [
    ("empty.md", b"  \n\n ", "empty"),
    ("binary.txt", b"\x00\x01\x02", "not a text file"),
    ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
])
def test_unusable_files_raise_unreadable_with_a_reason(tmp_path, name, data, reason):
    doc = tmp_path / name
    doc.write_bytes(data)
    with pytest.raises(Unreadable, match=reason):
        paragraphs_of(doc)


def test_an_encrypted_pdf_is_unreadable_with_the_fix(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(Unreadable, match="encrypted PDF"):
        extract_paragraphs(tmp_path / "locked.pdf", buffer.getvalue())


def test_discovery_names_files_relative_to_the_directory_and_reports_unsupported_ones(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("A", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "b.txt").write_text("B", encoding="utf-8")
    (tmp_path / "docs" / "c.docx").write_bytes(b"PK")
    (tmp_path / "docs" / ".hidden.md").write_text("H", encoding="utf-8")
    (tmp_path / "single.html").write_text("<p>S</p>", encoding="utf-8")
    files, skipped = discover([tmp_path / "docs", tmp_path / "single.html"])
    assert [f.name for f in files] == ["a.md", "single.html", "sub/b.txt"]
    assert skipped == [(str(tmp_path / "docs" / "c.docx"), skipped[0][1])] and "unsupported" in skipped[0][1]
    with pytest.raises(KnowledgeError, match="no such file or directory"):
        discover([tmp_path / "missing"])
    assert isinstance(files[0], SourceFile)


def test_sentences_split_on_final_punctuation_but_not_after_abbreviations():
    text = ("M. Martin a appelé. Il attend un rappel ! Est-ce possible ? Oui, p. ex. demain. 3.5 kVA suffisent "
            "(voir le tableau.) Il a dit « merci. » Puis il a raccroché.")
    assert split_sentences(text) == [
        "M. Martin a appelé.", "Il attend un rappel !", "Est-ce possible ?", "Oui, p. ex. demain.",
        "3.5 kVA suffisent (voir le tableau.)", "Il a dit « merci. »", "Puis il a raccroché.",
    ]


def test_chunks_pack_whole_paragraphs_and_carry_a_closing_heading_to_its_content():
    paragraphs = ["Billing", "one two three four five six.", "seven eight nine ten.", "Payment", "cash card cheque."]
    chunks = chunk_paragraphs(paragraphs, words, max_tokens=64, chunk_tokens=14, overlap_tokens=0)
    assert chunks == ["Billing\n\none two three four five six.\n\nseven eight nine ten.", "Payment\n\ncash card cheque."]


def test_long_paragraphs_are_cut_between_sentences_with_overlap():
    paragraph = " ".join(f"Sentence number {i} is here." for i in range(12))
    chunks = chunk_paragraphs([paragraph], words, max_tokens=64, chunk_tokens=22, overlap_tokens=5)
    assert all(words(c) <= 22 for c in chunks)
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:]):
        assert after.split(". ")[0].rstrip(".") in before  # the next chunk repeats the previous last sentence
    assert "Sentence number 11 is here." in chunks[-1]


def test_a_sentence_longer_than_the_window_is_cut_between_words():
    chunks = chunk_paragraphs(["word " * 100], words, max_tokens=30, chunk_tokens=128, overlap_tokens=0)
    assert all(words(c) <= 30 for c in chunks)
    assert sum(len(c.split()) for c in chunks) == 100


def test_real_chunks_never_exceed_the_models_window_in_its_own_tokens():
    embedder = get_embedder(EmbedderSpec("use-m3"))
    paragraphs = paragraphs_of(CORPUS / "faq-fr" / "facturation.md") + ["très-long-mot " * 600]
    chunks = chunk_paragraphs(paragraphs, embedder.count_tokens, embedder.max_tokens, 256, 32)
    assert max(embedder.count_tokens(c) for c in chunks) <= embedder.max_tokens


def test_chunk_sizes_too_small_for_any_text_are_refused():
    with pytest.raises(ValueError, match="use at least 10"):
        chunk_paragraphs(["text"], words, max_tokens=64, chunk_tokens=4, overlap_tokens=0)


def test_speakable_strips_markup_and_pauses_after_titles_and_items():
    text = "## Horaires\n\n- **Lundi** au vendredi : 8h-20h\n- Samedi : 9h-18h\n\nVoir [la page](http://x) ou tapez *#06#."
    assert speakable(text) == "Horaires. Lundi au vendredi : 8h-20h. Samedi : 9h-18h. Voir la page ou tapez *#06#."


def test_speakable_cuts_at_the_last_sentence_end_within_the_limit():
    text = "First sentence here. Second one, a bit longer. " + "Third sentence that goes on and on. " * 20
    cut = speakable(text, limit=60)
    assert cut == "First sentence here. Second one, a bit longer."
    assert len(speakable(text)) <= 300 and speakable(text).endswith(".")


def test_speakable_cuts_a_single_overlong_sentence_at_a_word_with_an_ellipsis():
    cut = speakable("mot " * 200, limit=50)
    assert cut.endswith("…") and len(cut) <= 51 and "mot mot" in cut


def test_a_heading_before_a_long_table_does_not_become_the_whole_spoken_answer():
    from knowledge.speakable import speakable
    text = ("Contacter le service client\n\nPar téléphone\n\nNos conseillers répondent au 01 99 00 12 34 :\n\n"
            + "".join(f"le jour {i} ; de 8 h à 20 h ;\n\n" for i in range(12)) + "Fin du tableau.")
    spoken = speakable(text)
    assert "de 8 h à 20 h" in spoken and len(spoken) <= 300
    assert spoken.endswith(".")
