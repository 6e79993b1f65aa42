"""Text attack benchmark: untrained bert_tiny, FedSGD, Rotten Tomatoes movie-review sentences.

Library level (no federation): for each sentence length (16 and 32 tokens) and batch (1 and 4),
each seed draws its own sentences and its own model initialisation, forms one curious-server
target, and every attack inverts that same target (the same gradients). Rows are the mean ± the
standard deviation over seeds of ROUGE-1/2/L (Hungarian-matched), token accuracy and exact
sentence rate, and the mean wall time per inversion. ``random`` is uniformly drawn token ids;
the ``(uniform start)`` rows start from random tokens of the recovered set instead of the
default gradient-row start, to show what that start contributes, and the ``simplex`` rows
optimise softmax mixtures of the token rows instead of free embeddings.

Defaults were chosen on Lee sentences, never on these; the LAMP prior is gpt_tiny trained on
``wiki_sample`` (not the victims' corpus), trained once before timing (its time is printed).

    python bench/bench_text_attacks.py [--quick] [--threads 1] [--iterations N] [--only TEXT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.target import AttackTarget, target_from_batch
from gradleak.attacks.text_prior import PriorSettings, language_prior
from gradleak.config import AttackConfig
from gradleak.data.text_corpus import TEXT_DATASETS, TextDataset
from gradleak.data.text_tokenizer import TextTokenizer, corpus_tokenizer
from gradleak.metrics.text import score_text_batch
from gradleak.models import MODELS, ModelSpec

KEYS = ("rouge1_mean", "rouge2_mean", "rougeL_mean", "token_accuracy", "exact_sentence_rate")
HEAD = ("ROUGE-1", "ROUGE-2", "ROUGE-L", "token acc", "exact")

Method = Callable[[AttackTarget, torch.Tensor, int], torch.Tensor]
"""(target, true ids, seed) -> reconstructed ids; true ids are read only by ``random``'s shape."""


def attack_method(name: str, iterations: int, cache: Path, **options: Any) -> Method:
    if name == "lamp":
        options.setdefault("prior_cache", str(cache))

    def run(target: AttackTarget, ids: torch.Tensor, seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        config = AttackConfig(name=name, iterations=iterations, options=options)
        return ATTACKS.get(name)(config).reconstruct(target).images

    return run


def random_method(target: AttackTarget, ids: torch.Tensor, seed: int) -> torch.Tensor:
    assert target.tokenizer is not None
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(target.tokenizer.vocab_size, tuple(ids.shape), generator=generator)


def case_target(
    data: TextDataset, tok: TextTokenizer, batch: int, seed: int
) -> tuple[AttackTarget, torch.Tensor]:
    picks = torch.randperm(len(data), generator=torch.Generator().manual_seed(1000 + seed))[:batch]
    sample = data.subset(picks)
    ids = tok.encode(sample.sentences)
    torch.manual_seed(seed)
    spec = ModelSpec(
        num_classes=data.num_classes, channels=0, image_size=0,
        vocab_size=tok.vocab_size, seq_len=tok.seq_len,
    )  # fmt: skip
    model = MODELS.get("bert_tiny")(spec)
    return target_from_batch(model, ids, sample.labels, tokenizer=tok), ids


def cell(values: list[float]) -> str:
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 iterations-short smoke run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None, help="text cache folder")
    parser.add_argument("--only", default="", help="run only the rows whose name holds this")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    iterations = 5 if args.quick else args.iterations
    seeds = 1 if args.quick else args.seeds
    lengths, batches = ((16,), (1, 4)) if args.quick else ((16, 32), (1, 4))
    cache = args.cache or Path(
        os.environ.get("GRADLEAK_TEXT_CACHE") or Path(tempfile.gettempdir()) / "gradleak-text-cache"
    )
    data = TEXT_DATASETS.get("movie_reviews")(cache)
    methods: dict[str, Method] = {
        "random": random_method,
        "tag": attack_method("tag", iterations, cache),
        "lamp": attack_method("lamp", iterations, cache),
        "fedleak_text": attack_method("fedleak_text", iterations, cache),
        "tag (uniform start)": attack_method("tag", iterations, cache, init="tokens"),
        "fedleak_text (uniform start)": attack_method(
            "fedleak_text", iterations, cache, init="tokens"
        ),
        "tag (simplex, uniform start)": attack_method(
            "tag", iterations, cache, init="tokens", parametrization="simplex"
        ),
        "fedleak_text (simplex, uniform start)": attack_method(
            "fedleak_text", iterations, cache, init="tokens", parametrization="simplex"
        ),
    }
    if args.only:
        methods = {k: v for k, v in methods.items() if k == "random" or args.only in k}
    print(
        f"# movie_reviews ({len(data)} sentences), untrained bert_tiny (vocab 2000), FedSGD, "
        f"{iterations} iterations, seeds 0..{seeds - 1}, {args.threads} thread(s)"
    )
    print("| T | B | attack | " + " | ".join(HEAD) + " | wall s |")
    print("|---|---|---|" + "---|" * (len(HEAD) + 1))
    for length in lengths:
        tok = corpus_tokenizer(data.sentences, "movie_reviews", cache, 2000, length)
        start = time.perf_counter()
        language_prior(tok, length, cache, PriorSettings())
        prior_s = time.perf_counter() - start
        for batch in batches:
            targets = [case_target(data, tok, batch, seed) for seed in range(seeds)]
            for name, method in methods.items():
                scores: dict[str, list[float]] = {k: [] for k in KEYS}
                walls = []
                for seed, (target, ids) in enumerate(targets):
                    start = time.perf_counter()
                    recon = method(target, ids, seed)
                    walls.append(time.perf_counter() - start)
                    got = score_text_batch(tok.decode(ids), tok.decode(recon), ids, recon)
                    for k in KEYS:
                        scores[k].append(got[k])
                row = " | ".join(cell(scores[k]) for k in KEYS)
                print(
                    f"| {length} | {batch} | {name} | {row} | {statistics.fmean(walls):.1f} |",
                    flush=True,
                )
        print(f"(T={length}: LAMP prior, gpt_tiny on wiki_sample, ready in {prior_s:.1f} s)")


if __name__ == "__main__":
    main()
