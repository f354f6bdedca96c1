"""One way to put an augmentation in front of a model: a forward pre-hook on its input.

A hook rather than a wrapper keeps the model object, its parameter names and its checkpoint
unchanged, acts only in training mode (validation, test, export and quantization never see
it), and is removed as easily as it was attached (pyannote.audio attaches its augmentations
the same way).
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

Transform = Callable[[torch.Tensor], torch.Tensor]


def attach_to_input(module: nn.Module, transform: Transform, training_only: bool = True) -> RemovableHandle:
    """Run ``transform`` on ``module``'s first input before each forward; returns the detach handle.

    With ``training_only`` (the default) the transform is skipped while the module is in eval mode.
    """

    def hook(mod: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
        if training_only and not mod.training:
            return None
        return (transform(args[0]), *args[1:])

    return module.register_forward_pre_hook(hook)


class InputAugmentation(L.Callback):
    """A callback that attaches ``self.transform`` to the task's model input for fitting only.

    Subclasses implement ``transform`` (a batch of model inputs in, the same shape out). It is
    attached at fit start and detached at fit end or on an exception, so the model leaves
    ``fit`` as it entered it.
    """

    _handle: RemovableHandle | None = None

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._detach()
        self._handle = attach_to_input(pl_module.model, self.transform)

    def _detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._detach()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._detach()
