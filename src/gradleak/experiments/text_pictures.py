"""Text's ``reconstruction.png``: true and matched reconstructed sentences side by side, as HTML.

A picture of text is best read as text, so a text run writes ``reconstruction.html``: one row
per true sentence (in truth order) beside the reconstruction the scorer matched to it, every
token marked by how it was recovered, the pair's scores on the row and the batch's in the
heading. The page is self-contained (inline style, no script, nothing fetched), and every token
is hostile input: sentences come from user files and reconstructions from an optimiser, so all
of it is escaped and none of it can become markup.

The same rows are drawn inside ``gradleak report``. The report never copies the file's markup
(a store names the folder, and a hostile one could point it at any HTML file): the page carries
its data as one escaped JSON attribute, which :func:`load_text_reconstruction` reads back,
checks and hands to the same renderer, so only escaped tokens and numbers reach the report.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gradleak.experiments import run_folder

FILE_NAME = "reconstruction.html"
DATA_ATTRIBUTE = "data-gradleak-text"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 8 << 20
"""A larger ``reconstruction.html`` is not one gradleak wrote for a batch of sentences."""

CONTINUATION = "##"
"""WordPiece's mark of a piece that continues the previous one (``play`` ``##ing``)."""

MARKS = {
    "same": "the same token at the same position in the other sentence",
    "moved": "in the other sentence, at another position",
    "absent": "not in the other sentence",
}
"""Each token's mark (its CSS class is ``tk-<mark>``) and what the legend says it means."""

ROW_SCORES = (
    ("rouge1", "ROUGE-1"),
    ("rouge2", "ROUGE-2"),
    ("rougeL", "ROUGE-L"),
    ("token_accuracy", "token acc."),
)
BATCH_SCORES = (
    ("rouge1_mean", "ROUGE-1"),
    ("rouge2_mean", "ROUGE-2"),
    ("rougeL_mean", "ROUGE-L"),
    ("token_accuracy", "token accuracy"),
    ("exact_sentence_rate", "exact sentences"),
)

TEXT_STYLE = """
table.gl-text{border-collapse:collapse;font-size:13px}
.gl-text th,.gl-text td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
.gl-text td.sent{max-width:32em;line-height:1.7}.gl-text td.num{text-align:right}
.tk{padding:0 1px;border-radius:2px}.tk-same{background:#b7e4b0;border-bottom:2px solid #2e7d32}
.tk-moved{background:#ffe08a;border-bottom:2px dashed #b26a00}.tk-absent{background:#f8c4c4}
.tk-cont{border-left:1px dotted #555;margin-left:0}.gl-legend{font-size:12px;margin:4px 0}
"""


def _num(value: Any) -> str:
    """A score as a table cell: three decimals, a dash where it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.3f}"


def mark_tokens(truth: Sequence[str], recon: Sequence[str]) -> tuple[list[str], list[str]]:
    """The mark of each true and each reconstructed token (a key of :data:`MARKS`).

    ``same``: equal to the token at the same position of the other sentence. ``moved``: the
    token occurs in the other sentence elsewhere; counts are respected (a true sentence with one
    ``the`` lends ``moved`` to one misplaced ``the`` of the reconstruction, not to three), taken
    left to right after the same-position matches. ``absent``: everything else, i.e. a
    reconstructed token the true sentence lacks, or a true token the reconstruction missed.
    """
    same = [i < len(recon) and recon[i] == token for i, token in enumerate(truth)]
    unmatched_truth = Counter(t for t, hit in zip(truth, same, strict=True) if not hit)
    recon_marks = []
    for j, token in enumerate(recon):
        if j < len(truth) and same[j]:
            recon_marks.append("same")
        elif unmatched_truth[token] > 0:
            unmatched_truth[token] -= 1
            recon_marks.append("moved")
        else:
            recon_marks.append("absent")
    lent = Counter(t for t, m in zip(recon, recon_marks, strict=True) if m == "moved")
    truth_marks = []
    for token, hit in zip(truth, same, strict=True):
        if hit:
            truth_marks.append("same")
        elif lent[token] > 0:
            lent[token] -= 1
            truth_marks.append("moved")
        else:
            truth_marks.append("absent")
    return truth_marks, recon_marks


def _sentence(tokens: Sequence[str], marks: Sequence[str]) -> str:
    """Tokens as marked spans; a ``##`` piece is drawn joined to the previous piece (no space,
    its ``##`` dropped, a dotted left edge showing the cut) with the raw piece as its tooltip."""
    parts = []
    for i, (token, mark) in enumerate(zip(tokens, marks, strict=True)):
        piece = len(token) > len(CONTINUATION) and token.startswith(CONTINUATION)
        shown = token[len(CONTINUATION) :] if piece else token
        classes = f"tk tk-{mark} tk-cont" if piece else f"tk tk-{mark}"
        tip = f' title="{html.escape(token)}"' if piece else ""
        space = "" if piece or i == 0 else " "
        parts.append(f'{space}<span class="{classes}"{tip}>{html.escape(shown)}</span>')
    return "".join(parts)


def legend() -> str:
    """What the marks mean."""
    items = " ".join(
        f'<span class="tk tk-{mark}">{html.escape(mark)}</span> {html.escape(meaning)};'
        for mark, meaning in MARKS.items()
    )
    return (
        f'<p class="gl-legend">{items} <span class="tk tk-cont">##</span> a WordPiece '
        "continuation, joined to the piece before it.</p>"
    )


def _check_rows(
    truth: Sequence[Sequence[str]],
    recon: Sequence[Sequence[str]],
    pairs: Sequence[Mapping[str, Any]],
) -> None:
    if not len(truth) == len(recon) == len(pairs):
        raise ValueError(
            f"{len(truth)} true sentences, {len(recon)} reconstructions, {len(pairs)} pair scores"
        )


def text_table(
    truth_tokens: Sequence[Sequence[str]],
    recon_tokens: Sequence[Sequence[str]],
    pair_scores: Sequence[Mapping[str, Any]],
    limit: int | None = None,
    data: str | None = None,
) -> str:
    """The rows as one ``<table class="gl-text">`` (the first ``limit`` rows, all by default);
    ``data``, when given, is the JSON the table carries in :data:`DATA_ATTRIBUTE`."""
    _check_rows(truth_tokens, recon_tokens, pair_scores)
    head = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in ("#", "true sentence", "reconstruction", *(label for _, label in ROW_SCORES))
    )
    rows = []
    shown = len(truth_tokens) if limit is None else min(limit, len(truth_tokens))
    for i in range(shown):
        truth, recon = list(truth_tokens[i]), list(recon_tokens[i])
        truth_marks, recon_marks = mark_tokens(truth, recon)
        scores = "".join(
            f'<td class="num">{_num(pair_scores[i].get(k))}</td>' for k, _ in ROW_SCORES
        )
        rows.append(
            f'<tr><td class="num">{i}</td><td class="sent">{_sentence(truth, truth_marks)}</td>'
            f'<td class="sent">{_sentence(recon, recon_marks)}</td>{scores}</tr>'
        )
    attribute = "" if data is None else f' {DATA_ATTRIBUTE}="{html.escape(data, quote=True)}"'
    return (
        f'<table class="gl-text"{attribute}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _batch_means(
    pair_scores: Sequence[Mapping[str, Any]], batch: Mapping[str, Any] | None
) -> list[tuple[str, Any]]:
    """The heading's scores: ``batch`` (``metrics.json``'s values) where given, else the means
    of the pairs' ROUGE (equal to the batch's) and of their token accuracies."""
    if batch is not None:
        return [(label, batch[key]) for key, label in BATCH_SCORES if key in batch]
    out = []
    for key, label in ROW_SCORES:
        values = [p[key] for p in pair_scores if _num(p.get(key)) != "–"]
        if values:
            out.append((f"{label} (mean of sentences)", sum(values) / len(values)))
    return out


def summary(pair_scores: Sequence[Mapping[str, Any]], batch: Mapping[str, Any] | None) -> str:
    """The batch's scores as one line of text (already escaped)."""
    means = _batch_means(pair_scores, batch)
    line = ", ".join(f"{html.escape(label)} {_num(value)}" for label, value in means)
    count = f"{len(pair_scores)} sentence{'' if len(pair_scores) == 1 else 's'}"
    return f"{count}: {line}" if line else count


def _finite(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _payload(
    truth: Sequence[Sequence[str]],
    recon: Sequence[Sequence[str]],
    pairs: Sequence[Mapping[str, Any]],
    title: str,
    batch: Mapping[str, Any] | None,
) -> str:
    """The page's data as strict JSON (NaN becomes null, which every reader accepts)."""
    return json.dumps(
        {
            "version": FORMAT_VERSION,
            "title": title,
            "truth": [list(t) for t in truth],
            "recon": [list(r) for r in recon],
            "pairs": [{k: _finite(v) for k, v in p.items()} for p in pairs],
            "batch": None if batch is None else {k: _finite(v) for k, v in batch.items()},
        },
        allow_nan=False,
    )


def render_text_reconstruction(
    truth_tokens: Sequence[Sequence[str]],
    recon_tokens: Sequence[Sequence[str]],
    pair_scores: Sequence[Mapping[str, float]],
    title: str,
    batch_scores: Mapping[str, float] | None = None,
) -> str:
    """The whole ``reconstruction.html`` document.

    ``recon_tokens[i]`` must already be the reconstruction matched to ``truth_tokens[i]``
    (``[recon[j] for j in TextScores.order]``), as for the image grid; ``pair_scores[i]`` is
    that pair's dict (``TextScores.pairs[i]``: ``rouge1``, ``rouge2``, ``rougeL``, optionally
    ``token_accuracy``); ``batch_scores`` is what ``metrics.json`` holds (``TextScores.batch``),
    shown in the heading (without it, the means of the pairs are shown, labelled so).
    """
    data = _payload(truth_tokens, recon_tokens, pair_scores, title, batch_scores)
    table = text_table(truth_tokens, recon_tokens, pair_scores, data=data)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}}{TEXT_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{summary(pair_scores, batch_scores)}</p>
{legend()}
{table}
</body></html>
"""


def save_text_reconstruction(
    truth_tokens: Sequence[Sequence[str]],
    recon_tokens: Sequence[Sequence[str]],
    pair_scores: Sequence[Mapping[str, float]],
    title: str,
    path: Path,
    batch_scores: Mapping[str, float] | None = None,
) -> None:
    """Write :func:`render_text_reconstruction`'s document to ``path`` atomically (the old file
    or all of the new one, never half of it); an OSError is left to the caller, which turns it
    into its one line (``run_folder.output_failure``)."""
    document = render_text_reconstruction(
        truth_tokens, recon_tokens, pair_scores, title, batch_scores
    )
    run_folder.write_atomic(Path(path), document.encode("utf-8", errors="replace"))


@dataclass(frozen=True)
class TextPicture:
    """What a ``reconstruction.html`` holds, read back and checked."""

    title: str
    truth: list[list[str]]
    recon: list[list[str]]
    pairs: list[dict[str, float | None]]
    batch: dict[str, float | None] | None


class _DataFinder(HTMLParser):
    """Finds the first table's :data:`DATA_ATTRIBUTE` (its value arrives unescaped)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.data is None and tag == "table":
            self.data = dict(attrs).get(DATA_ATTRIBUTE)


def _tokens(value: Any) -> list[list[str]] | None:
    if not isinstance(value, list):
        return None
    ok = all(isinstance(row, list) and all(isinstance(t, str) for t in row) for row in value)
    return value if ok else None


def _scores(value: Any) -> dict[str, float | None] | None:
    if not isinstance(value, dict):
        return None
    out = {}
    for key, score in value.items():
        if not isinstance(key, str) or not (score is None or _finite(score) is not None):
            return None
        out[key] = None if score is None else float(score)
    return out


def load_text_reconstruction(path: Path) -> TextPicture | None:
    """The data of a ``reconstruction.html`` that gradleak wrote, or None for anything else (a
    missing, unreadable, oversized or foreign file, or data of the wrong shape): the report
    then says there is no picture rather than failing or showing a stranger's file."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    finder = _DataFinder()
    finder.feed(text)
    finder.close()
    try:
        data = json.loads(finder.data or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        return None
    truth, recon = _tokens(data.get("truth")), _tokens(data.get("recon"))
    pairs = data.get("pairs")
    checked = [_scores(p) for p in pairs] if isinstance(pairs, list) else None
    batch = None if data.get("batch") is None else _scores(data.get("batch"))
    title = data.get("title")
    if (
        truth is None
        or recon is None
        or checked is None
        or any(p is None for p in checked)
        or not len(truth) == len(recon) == len(checked)
        or (data.get("batch") is not None and batch is None)
        or not isinstance(title, str)
    ):
        return None
    return TextPicture(title, truth, recon, [p for p in checked if p is not None], batch)
