"""breaching 0.1.2's Inverting Gradients on a :class:`bench_helpers.Case`, without its ``cases``.

Imported only inside the bench environment (see :mod:`breaching_env`), after
:func:`stub_torchvision_ops`. breaching gets the raw model (it normalises nothing itself), the
same gradient as a list, the labels, the paper's IG config with ``max_iterations`` set and one
trial, and the same start as gradleak, normalised (its ``initial_data``). The server payload
and the user's shared data are built by hand, as breaching's ``minimal_example.py`` does.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from bench_helpers import CIFAR10_MEAN, CIFAR10_STD, IMAGE_SHAPE, Case, initial_images

_LIBRARIES: list[Any] = []


def stub_torchvision_ops() -> None:
    """Declare ``torchvision::nms``/``qnms`` before torchvision is first imported.

    torchvision 0.28.0 installed with ``--no-deps`` beside torch 2.13.0 has no compiled ops, and
    its meta-kernel registration then fails (``operator torchvision::nms does not exist``).
    Nothing on the IG path calls them; the library object must stay referenced.
    """
    if _LIBRARIES:
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARIES.append(lib)


class Breaching:
    """The imported breaching package and its IG config, composed once (Hydra is slow)."""

    def __init__(self) -> None:
        stub_torchvision_ops()
        with warnings.catch_warnings():  # Hydra's version_base notice on import
            warnings.simplefilter("ignore")
            import breaching
        from omegaconf import OmegaConf

        logging.getLogger("breaching").setLevel(logging.WARNING)
        self.breaching, self.omegaconf = breaching, OmegaConf
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Hydra prints the composed case and warns
            self._attack = breaching.get_config(overrides=["attack=invertinggradients"]).attack
        self.mean = torch.tensor(CIFAR10_MEAN)[None, :, None, None]
        self.std = torch.tensor(CIFAR10_STD)[None, :, None, None]

    @property
    def version(self) -> str:
        return str(getattr(self.breaching, "__version__", "0.1.2"))

    def _config(self, iterations: int) -> Any:
        cfg = self.omegaconf.create(self.omegaconf.to_container(self._attack, resolve=True))
        cfg.optim.max_iterations = iterations
        cfg.restarts.num_trials = 1
        return cfg

    def runner(self, case: Case, seed: int = 1) -> Callable[[int], Tensor]:
        """A callable ``n -> images in [0, 1]``; the attacker for each ``n`` is prepared once,
        outside the timed call, as a user would reuse it."""
        attackers: dict[int, Any] = {}
        meta = self.omegaconf.create(
            {
                "modality": "vision",
                "shape": list(IMAGE_SHAPE),
                "mean": list(CIFAR10_MEAN),
                "std": list(CIFAR10_STD),
                "classes": 10,
            }
        )
        payload = {
            "parameters": [p.detach().clone() for p in case.net.parameters()],
            "buffers": None,
            "metadata": meta,
        }
        start = (initial_images(case.batch, seed) - self.mean) / self.std

        def run(iterations: int) -> Tensor:
            if iterations not in attackers:
                setup = {"device": torch.device("cpu"), "dtype": torch.float}
                attackers[iterations] = self.breaching.attacks.prepare_attack(
                    case.net, nn.CrossEntropyLoss(), self._config(iterations), setup
                )
            shared = {
                "gradients": [g.clone() for g in case.grads],
                "buffers": None,
                "metadata": {
                    "num_data_points": case.batch,
                    "labels": case.labels.clone(),
                    "local_hyperparams": None,
                },
            }
            torch.manual_seed(seed)
            out, _ = attackers[iterations].reconstruct(
                [payload], [shared], {}, initial_data=start, dryrun=False
            )
            return (out["data"].detach() * self.std + self.mean).clamp(0, 1)

        return run
