"""``reconstruction.html``: tokens marked by how they were recovered, hostile text escaped,
WordPiece pieces joined, the file written atomically and read back by the report's loader."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

from gradleak.experiments import run_folder
from gradleak.experiments.text_pictures import (
    load_text_reconstruction,
    mark_tokens,
    render_text_reconstruction,
    save_text_reconstruction,
    text_table,
)

SPAN = re.compile(r'<span class="tk tk-(\w+)(?: tk-cont)?"(?: title="[^"]*")?>([^<]*)</span>')
PAIR = {"rouge1": 0.75, "rouge2": 0.25, "rougeL": 0.5, "token_accuracy": 0.4}


def _marked_rows(page: str) -> list[tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
    """(mark, shown text) of every token in each row's true and reconstructed cells."""
    body = page[page.index("<tbody>") :]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body):
        cells = re.findall(r'<td class="sent">(.*?)</td>', row)
        rows.append((SPAN.findall(cells[0]), SPAN.findall(cells[1])))
    return rows


def test_marks_same_moved_and_absent_respecting_counts() -> None:
    truth = ["the", "cat", "sat", "on", "the", "mat"]
    recon = ["the", "mat", "the", "the", "on", "dog"]
    truth_marks, recon_marks = mark_tokens(truth, recon)
    # Position 0 matches; "mat" and one more "the" are misplaced; the true sentence has only
    # two "the", one already matched in place, so the third reconstructed "the" is absent.
    assert recon_marks == ["same", "moved", "moved", "absent", "moved", "absent"]
    assert truth_marks == ["same", "absent", "absent", "moved", "moved", "moved"]
    # Unequal lengths: positions past the shorter sentence can only be moved or absent.
    assert mark_tokens(["a", "b"], ["a", "b", "a"]) == (
        ["same", "same"],
        ["same", "same", "absent"],
    )
    assert mark_tokens([], ["x"]) == ([], ["absent"])


def test_page_shows_each_pair_marked_with_its_scores_and_the_batch_means() -> None:
    truth = [["the", "market", "fell"], ["rain", "is", "expected"]]
    recon = [["market", "the", "fell"], ["snow", "is", "expected"]]
    pairs = [PAIR, {"rouge1": 0.6667, "rouge2": 0.5, "rougeL": 0.6667, "token_accuracy": 2 / 3}]
    batch = {"rouge1_mean": 0.7083, "rougeL_mean": 0.5833, "token_accuracy": 0.5}
    page = render_text_reconstruction(truth, recon, pairs, "tag on lee", batch)
    rows = _marked_rows(page)
    assert rows[0] == (
        [("moved", "the"), ("moved", "market"), ("same", "fell")],
        [("moved", "market"), ("moved", "the"), ("same", "fell")],
    )
    assert rows[1][1] == [("absent", "snow"), ("same", "is"), ("same", "expected")]
    assert rows[1][0][0] == ("absent", "rain")
    first = page[page.index("<tbody>") :].split("</tr>")[0]
    assert re.findall(r'<td class="num">([^<]*)</td>', first) == [
        "0", "0.750", "0.250", "0.500", "0.400",
    ]  # fmt: skip
    heading = page[page.index("<h1>") : page.index("<table")]
    assert "ROUGE-1 0.708" in heading and "token accuracy 0.500" in heading
    assert "ROUGE-2" not in heading  # only the batch keys given are shown
    legend = page[page.index('class="gl-legend"') : page.index("<table")]
    for mark in ("same", "moved", "absent", "cont"):
        assert f'class="tk tk-{mark}"' in legend, mark
    assert "<script" not in page and not re.search(r"(src|href)=", page)


def test_without_batch_scores_the_heading_says_it_shows_means_of_pairs() -> None:
    page = render_text_reconstruction([["a"]], [["a"]], [PAIR], "t")
    assert "ROUGE-1 (mean of sentences) 0.750" in page and "1 sentence:" in page
    nan = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "token_accuracy": float("nan")}
    page = render_text_reconstruction([["a"]], [["b"]], [nan], "t")
    assert page.count('<td class="num">–</td>') == 1  # NaN accuracy shown as a dash
    with pytest.raises(ValueError, match="2 true sentences, 1 reconstructions"):
        render_text_reconstruction([["a"], ["b"]], [["a"]], [PAIR], "t")


def test_hostile_text_is_escaped_everywhere() -> None:
    evil = ['<script>alert("x")</script>', "</td></tr><img src=x onerror=alert(1)>", "&amp;"]
    title = "<script>alert(2)</script>"
    page = render_text_reconstruction([evil], [["##<b>", *evil[1:]]], [PAIR], title)
    assert "<script" not in page
    assert "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert f"<title>{html.escape(title)}</title>" in page
    assert "&amp;amp;" in page  # an entity in the text is shown as typed, not decoded
    assert page.count("<tr>") == 2  # header and the one pair: no row injected


def test_wordpiece_continuations_join_the_previous_piece() -> None:
    table = text_table([["play", "##ing", "now"]], [["play", "##ed", "##"]], [PAIR])
    assert (
        '<span class="tk tk-same">play</span><span class="tk tk-absent tk-cont" title="##ing">ing'
        in table
    )
    assert '<span class="tk tk-absent tk-cont" title="##ed">ed</span>' in table
    assert '> <span class="tk tk-absent">##</span>' in table  # a bare "##" is a word


def test_real_sentences_read_back_as_their_decoded_text(text_cache: Path, tmp_path: Path) -> None:
    """On the Lee corpus with its own WordPiece tokeniser, the drawn true sentence is the
    decoded sentence piece for piece (spaces aside: decoding also tidies punctuation)."""
    pytest.importorskip("tokenizers")
    from gradleak.data.text_corpus import load_lee
    from gradleak.data.text_tokenizer import corpus_tokenizer

    data = load_lee(text_cache)
    tok = corpus_tokenizer(data.sentences, "lee", tmp_path, vocab_size=600, seq_len=32)
    ids = tok.encode(data.sentences[:6])
    tokens = tok.tokens(ids)
    assert any(t.startswith("##") for row in tokens for t in row)  # pieces are exercised
    reversed_tokens = [row[::-1] for row in tokens]
    page = render_text_reconstruction(tokens, reversed_tokens, [PAIR] * 6, "lee")
    for (truth_spans, recon_spans), decoded, row in zip(
        _marked_rows(page), tok.decode(ids), tokens, strict=True
    ):
        shown = "".join(html.unescape(text) for _, text in truth_spans)
        assert shown == decoded.replace(" ", "")
        assert all(mark != "absent" for mark, _ in recon_spans)  # same tokens, other order
        assert [m for m, _ in recon_spans].count("same") == sum(
            a == b for a, b in zip(row, row[::-1], strict=True)
        )


def test_saved_atomically_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "reconstruction.html"
    truth, recon = [["<i>", "b"], ["c"]], [["b", "<i>"], ["c"]]
    pairs = [PAIR, {**PAIR, "token_accuracy": float("nan")}]
    save_text_reconstruction(truth, recon, pairs, "t", path, {"rouge1_mean": 0.5})
    assert path.read_text(encoding="utf-8") == render_text_reconstruction(
        truth, recon, pairs, "t", {"rouge1_mean": 0.5}
    )
    back = load_text_reconstruction(path)
    assert back is not None and back.truth == truth and back.recon == recon
    assert back.pairs[1]["token_accuracy"] is None and back.batch == {"rouge1_mean": 0.5}
    # A write that fails at the rename leaves the old file whole and no temporary behind.
    old = path.read_bytes()

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_folder.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        save_text_reconstruction([["x"]], [["y"]], [PAIR], "new", path)
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["reconstruction.html"]


def test_loader_refuses_what_gradleak_did_not_write(tmp_path: Path) -> None:
    path = tmp_path / "reconstruction.html"
    assert load_text_reconstruction(path) is None  # missing
    for text in (
        "<html><script>alert(1)</script><table><tr><td>secret</td></tr></table></html>",
        '<table data-gradleak-text="not json">',
        '<table data-gradleak-text="{&quot;version&quot;: 1, &quot;truth&quot;: [[1]]}">',
        # rows that do not line up, and a score that is not a number
        text_table([["a"]], [["a"]], [PAIR], data='{"version": 1, "title": "t", "truth": '
                   '[["a"]], "recon": [], "pairs": [], "batch": null}'),
        text_table([["a"]], [["a"]], [PAIR], data='{"version": 1, "title": "t", "truth": '
                   '[["a"]], "recon": [["a"]], "pairs": [{"rouge1": "x"}], "batch": null}'),
    ):  # fmt: skip
        path.write_text(text, encoding="utf-8")
        assert load_text_reconstruction(path) is None, text
    path.write_bytes(b"\xff\xfe not utf-8")
    assert load_text_reconstruction(path) is None
