"""CP-JKU's own DCASE23 code, run beside asc_kd's by ``bench train`` and ``bench teacher``
``--cpjku DIR``.

asc_kd's speed goals are ratios against the code it replaces, not only against a re-creation of
that code inside this package. ``DIR`` is a checkout of github.com/fschmid56/cpjku_dcase23 (the
benchmarks follow commit ``2e20aba``); nothing of it ships with asc_kd and nothing downloads:
without ``--cpjku`` the benchmarks compare against their in-package baselines only.

Their modules are imported as they are. Two packages were renamed since 2023, and only the
benchmark process gets the old names: ``pytorch_lightning`` (imported by their helpers for a
callback the benchmark does not use) is ``lightning.pytorch``, and ``timm.models.layers.helpers``
(the ``to_2tuple`` their PaSST imports) is ``timm.layers.helpers``. Their mel front-end calls
``torch.stft(..., return_complex=False)``, which current torch refuses; the benchmark gives their
``AugmentMelSTFT`` a ``torch.stft`` that returns the same real view of the complex result
(``view_as_real``): the same numbers and one extra copy, as their code had on the torch of 2023.

Their training steps are rebuilt from ``run_training.py`` (the KD loss: ``KLDivLoss(log_target=True,
reduction="none")`` on temperature-softened log-probabilities, mean, times T²) and
``run_passt_training.py`` with the settings of asc_kd's recipes, so both sides do the same work.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from asc_kd.core.errors import ConfigError

#: The files of the checkout the benchmarks import.
NEEDED = ("models/mel.py", "models/cp_resnet.py", "models/passt.py", "helpers/utils.py")


def load_cpjku(root: str | Path) -> types.SimpleNamespace:
    """Import CP-JKU's ``models.mel``, ``models.cp_resnet``, ``models.passt`` and
    ``helpers.utils`` from the checkout at ``root``; a clear error when it is not one."""
    root = Path(root).expanduser().resolve()
    missing = [name for name in NEEDED if not (root / name).is_file()]
    if missing:
        raise ConfigError(
            f"--cpjku {root}: not a checkout of github.com/fschmid56/cpjku_dcase23 "
            f"(missing {', '.join(missing)}); clone it and pass its folder"
        )
    _old_package_names()
    sys.path.insert(0, str(root))
    try:
        modules = {
            name.split(".")[-1]: importlib.import_module(name)
            for name in ("models.mel", "models.cp_resnet", "models.passt", "helpers.utils")
        }
    finally:
        sys.path.remove(str(root))
    modules["mel"].torch = _TorchWithRealStft()
    return types.SimpleNamespace(root=root, **modules)


def _old_package_names() -> None:
    import lightning.pytorch
    import timm.layers.helpers

    sys.modules.setdefault("pytorch_lightning", lightning.pytorch)
    sys.modules.setdefault("pytorch_lightning.callbacks", lightning.pytorch.callbacks)
    sys.modules.setdefault("timm.models.layers.helpers", timm.layers.helpers)


class _TorchWithRealStft(types.ModuleType):
    """``torch`` for CP-JKU's ``models/mel.py``: ``stft(return_complex=False)`` as the torch of
    2023 gave it (the real view of the complex STFT, stacked in a last dimension of 2)."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def stft(*args: Any, return_complex: bool = False, **kwargs: Any) -> torch.Tensor:
        spec = torch.stft(*args, return_complex=True, **kwargs)
        return spec if return_complex else torch.view_as_real(spec).contiguous()


def student_step(
    cpjku: types.SimpleNamespace, frontend: dict[str, Any], temperature: float, label_weight: float
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], int]:
    """CP-JKU's KD training step of CP-ResNet (their ``get_model`` defaults: rho 8, blocks 2/1/1,
    92 stage-3 channels, asc_kd's ``system1``), on their ``AugmentMelSTFT`` with ``frontend``
    (asc_kd's ``StudentMel`` arguments), their frequency MixStyle (applied every step), the KD
    loss of their ``run_training.py`` and ``torch.optim.Adam`` as they create it."""
    with contextlib.redirect_stdout(io.StringIO()):  # their "FMAX is None" notice
        mel = cpjku.mel.AugmentMelSTFT(
            n_mels=frontend.get("n_mels", 256),
            sr=frontend.get("sample_rate", 32000),
            win_length=frontend.get("win_length", 2048),
            hopsize=frontend.get("hop_length", 737),
            n_fft=frontend.get("n_fft", 2048),
            freqm=frontend.get("freqm", 0),
            timem=frontend.get("timem", 0),
            fmin=frontend.get("fmin", 0.0),
            fmax=frontend.get("fmax"),
            fmin_aug_range=frontend.get("fmin_aug_range", 1),
            fmax_aug_range=frontend.get("fmax_aug_range", 1),
        ).train()
    model = cpjku.cp_resnet.get_model(n_classes=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    kl_div = torch.nn.KLDivLoss(log_target=True, reduction="none")

    def step(waveform: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor) -> int:
        x = mel(waveform).unsqueeze(1)
        x = cpjku.utils.mixstyle(x, 1.0, 0.3)
        y_hat = model(x)
        label_loss = F.cross_entropy(y_hat, target)
        soft = F.log_softmax(y_hat / temperature, dim=-1)
        kd_loss = kl_div(soft, F.log_softmax(teacher / temperature, dim=-1)).mean() * temperature**2
        loss = label_weight * label_loss + (1 - label_weight) * kd_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return len(waveform)

    return step


def passt_teacher(cpjku: types.SimpleNamespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    """CP-JKU's PaSST teacher as ``run_passt_training.py`` builds it (random weights): their
    ``AugmentMelSTFT`` with the teacher settings and ``passt_s_swa_p16_128_ap476`` with
    frequency patchout 6, for 10 classes. Returns (front-end, model)."""
    with contextlib.redirect_stdout(io.StringIO()):  # their "FMAX is None" notice
        mel = cpjku.mel.AugmentMelSTFT(
            n_mels=128,
            sr=32000,
            win_length=800,
            hopsize=320,
            n_fft=1024,
            freqm=48,
            timem=20,
            fmin=0,
            fmax=None,
            fmin_aug_range=1,
            fmax_aug_range=1000,
        )
    model = cpjku.passt.get_model(
        arch="passt_s_swa_p16_128_ap476",
        pretrained=False,
        n_classes=10,
        input_fdim=128,
        s_patchout_t=0,
        s_patchout_f=6,
    )
    return mel, model
