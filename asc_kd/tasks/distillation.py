"""``DistillationTask``: a student trained on labels and on teacher logits (report section 2).

Teacher logits come either from the batch (``teacher_logits``, a precomputed ensemble file
joined by clip in the DataModule), which is how the report and CP-JKU train, or from teacher
checkpoints run online on the same (augmented, mixed) waveforms, whose logits are averaged
like the offline ensemble.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from asc_kd.augmentations.mixing import TeacherMix, mix_teacher_logits
from asc_kd.core.batch import Batch
from asc_kd.tasks.classification import ClassificationTask
from asc_kd.tasks.losses import KLReduction, knowledge_distillation_loss
from asc_kd.tasks.restore import load_task


class DistillationTask(ClassificationTask):
    """Knowledge distillation into a student (``loss = λ·CE + (1−λ)·T²·KL``).

    ``training_loss`` returns ``loss``, ``label_loss`` and ``kd_loss`` (logged as ``train/...``).

    Args:
        temperature: softmax temperature T of both teacher and student (report: 3).
        label_weight: λ, the weight of the label cross-entropy.
        kl_reduction: ``batchmean`` (Hinton's KL, per example) or ``mean`` (CP-JKU's DCASE23
            code, also averaged over classes: a ``n_classes`` times smaller KD term).
        teacher_mix: how precomputed teacher logits of Mixup-mixed clips are mixed:
            ``probabilities`` mixes the temperature-softened teacher distributions with the
            clips' λ, as the labels are mixed; ``logits`` mixes the logits (CP-JKU's code).
            Online teachers hear the mixed audio and need neither.
        teacher_checkpoints: ``ClassificationTask`` checkpoints to run online; when empty the
            batch must carry ``teacher_logits``.
        **kwargs: everything ``ClassificationTask`` takes (model, front-end, optimiser).
    """

    def __init__(
        self,
        temperature: float = 3.0,
        label_weight: float = 0.5,
        kl_reduction: KLReduction = "batchmean",
        teacher_mix: TeacherMix = "probabilities",
        teacher_checkpoints: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters(logger=False)
        self.teachers = nn.ModuleList()

    def setup(self, stage: str) -> None:
        """Load online teachers for fitting only, so a student checkpoint reloads without them."""
        if stage == "fit" and not len(self.teachers):
            for path in self.hparams.teacher_checkpoints or []:
                teacher = load_task(path)
                teacher.requires_grad_(False)
                self.teachers.append(teacher)
            if len(self.teachers):  # frozen teachers stay in eval mode on purpose
                warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start")

    def train(self, mode: bool = True) -> DistillationTask:
        super().train(mode)
        for teacher in self.teachers:
            teacher.eval()  # teachers never train, nor use dropout or augmenting front-ends
        return self

    def teacher_logits(self, batch: Batch) -> torch.Tensor:
        """The KD target logits of the batch: online teachers' mean, else the batch's (mixed as
        the clips were when Mixup ran)."""
        if len(self.teachers):
            with torch.no_grad():
                return torch.stack([t(batch["waveform"]) for t in self.teachers]).mean(0)
        if "teacher_logits" not in batch:
            raise KeyError(
                "DistillationTask needs teacher logits: give data.teacher_logits (a file from "
                "`python -m asc_kd.logits`) or model.teacher_checkpoints"
            )
        logits = batch["teacher_logits"]
        if "mix_lambda" in batch:
            logits = mix_teacher_logits(
                logits,
                batch["mix_lambda"],
                batch["mix_permutation"],
                self.hparams.temperature,
                self.hparams.teacher_mix,
            )
        return logits

    def training_loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        return knowledge_distillation_loss(
            logits,
            batch.get("soft_target", batch["target"]),
            self.teacher_logits(batch),
            hp.temperature,
            hp.label_weight,
            hp.kl_reduction,
        )

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # Teachers are inputs, not results: keep student checkpoints student-sized.
        state = super().state_dict(*args, **kwargs)
        return {k: v for k, v in state.items() if not k.startswith("teachers.")}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False):
        own = {k: v for k, v in super().state_dict().items() if k.startswith("teachers.")}
        return super().load_state_dict({**state_dict, **own}, strict=strict, assign=assign)
