"""How identifiable the curious client's 4 × 4 inversion is (why it stalled on DLG's LeNet).

On the 4-client × 4-image scenario of configs/curious_client.yaml (labels given) this prints
the normalised matching loss (the attack's objective, without total variation) at the truth, at
its 2×- and 4×-downsampled versions, at a flat grey image and at what the attack finds from
noise without total variation (300 iterations per stage); the PSNR the optimiser keeps when
started *at* the 2×-downsampled truth; and how image-specific the model's last-layer inputs are
(cosine similarity between different images' features). Run:
``OMP_NUM_THREADS=1 python bench/diagnose_curious_client.py [--set KEY=VALUE ...]``; the table in
bench/results/curious_client.md is for ``--set model.name=lenet_dlg model.activation=sigmoid
attack.options.objective=l2``, the configuration that stalled at 14.8 dB.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench_curious_client import CONFIG, add_set_option  # bench/ is on sys.path when run
from gradleak.attacks.curious_client import CuriousClient, RoundsLoss
from gradleak.attacks.optim import LoopSettings, optimize
from gradleak.attacks.parametrizations import LowResParametrization, ParametrizationSettings
from gradleak.config import load_config
from gradleak.experiments.threats.peer import curious_peer
from gradleak.metrics.scoring import score_reconstruction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(CONFIG, ["attack.labels=given", "threat.knows_labels=true", *args.set])
    torch.manual_seed(config.seed)
    scenario = curious_peer(config, torch.device("cpu"))
    target, truth = scenario.target, scenario.truth
    labels = target.labels
    assert labels is not None
    loss = RoundsLoss(target, "l2", "total", 0.0)

    def psnr(images: torch.Tensor) -> float:
        return score_reconstruction(images, truth.images, None, truth.labels, None).psnr_mean

    def downsampled(scale: int) -> torch.Tensor:
        small = F.interpolate(truth.images, scale_factor=1 / scale, mode="area")
        up = F.interpolate(small, size=truth.images.shape[-2:], mode="bicubic", align_corners=False)
        return up.clamp(0, 1)

    print("| images | matching loss | PSNR (dB) |\n|---|---|---|")
    for name, images in (
        ("truth", truth.images),
        ("truth, 2× downsampled", downsampled(2)),
        ("truth, 4× downsampled", downsampled(4)),
        ("flat grey", torch.full_like(truth.images, 0.5)),
    ):
        value = float(loss(images, labels).detach())  # the replay needs autograd
        print(f"| {name} | {value:.3g} | {psnr(images):.2f} |")

    no_tv = config.attack.model_copy(update={"tv_weight": 0.0})
    for stages in ([], [1]):
        options = {**no_tv.options, "refine_scales": stages, "scale": 2 if stages else 4}
        attack = CuriousClient(no_tv.model_copy(update={"options": options}))
        found = attack.reconstruct(target).images
        print(
            f"| from noise, no TV, scales {[options['scale'], *stages]} | "
            f"{float(loss(found, labels).detach()):.3g} | {psnr(found):.2f} |"
        )

    param = LowResParametrization(
        tuple(truth.images.shape),
        torch.Generator().manual_seed(0),
        torch.device("cpu"),
        ParametrizationSettings(scale=2),
    )
    param.load_state([F.interpolate(truth.images, scale_factor=0.5, mode="area")])
    result = optimize(
        param,
        lambda: loss(param.images(), labels),
        LoopSettings(300, 0.01, "adam", "cosine", False, 50),
    )
    kept = param.images().detach()
    print(
        f"\nStarted at the 2×-downsampled truth (s = 2, 300 Adam steps, lr 0.01): loss "
        f"{result.best_loss:.3g}, {psnr(kept):.2f} dB"
    )

    model = target.model
    body = torch.nn.Sequential(*list(model.children())[:-1])
    head = str(len(model) - 1)
    with torch.no_grad():
        features = functional_call(
            body,
            {k: v for k, v in target.parameters.items() if not k.startswith(head)},
            (truth.images,),
        )
    cosine = F.cosine_similarity(features[:, None], features[None], dim=-1)
    off_diagonal = cosine[~torch.eye(len(cosine), dtype=torch.bool)]
    print(
        f"Last-layer inputs of different peers' images: cosine similarity {float(off_diagonal.min()):.3f}"
        f"–{float(off_diagonal.max()):.3f} (mean {float(off_diagonal.mean()):.3f})"
    )


if __name__ == "__main__":
    main()
