"""Deliberate breaks of the science path, each of which some test must catch.

    .venv/bin/python tests/mutations.py [NAME ...]

Copies the repository to a temporary folder, applies one break at a time (the changes issue 15
lists: KD weights, temperature, soft targets, teacher averaging, logits export, fingerprint
check, the artifact's front-end, calibration data, predict's windows and mode, pipeline
--force) and runs the tests that should fail; prints CAUGHT or MISSED for each and exits 1 if
any break went unnoticed. Not part of ``make test``: it runs the selected tests once per break.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent
MUTATIONS = [
    (
        "KD label weight fixed at 1",
        "asc_kd/tasks/distillation.py",
        "            hp.temperature,\n            hp.label_weight,",
        "            hp.temperature,\n            1.0,",
        ["tests/tasks/test_distillation.py"],
    ),
    (
        "KD temperature fixed at 1",
        "asc_kd/tasks/distillation.py",
        "            hp.temperature,\n            hp.label_weight,",
        "            1.0,\n            hp.label_weight,",
        ["tests/tasks/test_distillation.py"],
    ),
    (
        "Mixup soft targets ignored",
        "asc_kd/tasks/distillation.py",
        '            batch.get("soft_target", batch["target"]),',
        '            batch["target"],',
        ["tests/tasks/test_distillation.py"],
    ),
    (
        "online teachers summed",
        "asc_kd/tasks/distillation.py",
        "for t in self.teachers]).mean(0)",
        "for t in self.teachers]).sum(0)",
        ["tests/tasks/test_distillation.py"],
    ),
    (
        "ensemble summed",
        "asc_kd/training/logits.py",
        "ensemble = ensemble + logits / len(members)",
        "ensemble = ensemble + logits",
        ["tests/training/test_ensemble.py"],
    ),
    (
        "filenames misaligned in the export",
        "asc_kd/training/logits.py",
        "    keys = dataset.keys\n",
        "    keys = dataset.keys[1:] + dataset.keys[:1]\n",
        ["tests/training/test_ensemble.py"],
    ),
    (
        "fingerprint check removed",
        "asc_kd/data/datamodule.py",
        "        change = self.data_change(metadata, filenames)\n",
        "        change = None\n",
        ["tests/data/test_datamodule.py"],
    ),
    (
        "logits join compares the sampled fingerprint only",
        "asc_kd/data/datamodule.py",
        "        if recorded and cache is not None:",
        "        if False:",
        ["tests/data/test_datamodule.py"],
    ),
    (
        "cache build hashes no clip",
        "asc_kd/data/cache.py",
        "digests = [hashlib.sha256(Path(path).read_bytes()).digest() for path in paths]",
        "digests = [bytes(32) for path in paths]",
        ["tests/data/test_cache.py"],
    ),
    (
        "logits file without the content hash",
        "asc_kd/training/logits.py",
        "        **datamodule.data_record(filenames),",
        '        **{**datamodule.data_record(filenames), "dataset_content_hash": None},',
        ["tests/training/test_ensemble.py"],
    ),
    (
        "every process builds the cache",
        "asc_kd/data/cache.py",
        '    with folder_lock(folder, "the cache", lock_timeout):',
        "    if True:",
        ["tests/data/test_cache.py"],
    ),
    (
        "every job generates the synthetic scenes",
        "asc_kd/data/synthetic.py",
        '    with folder_lock(root, "the synthetic scenes", lock_timeout, action="generated"):',
        "    if True:",
        ["tests/data/test_synthetic.py"],
    ),
    (
        "a lock on a deleted lock file",
        "asc_kd/core/locks.py",
        "current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)",
        "True",
        ["tests/core/test_locks.py"],
    ),
    (
        "artifact with a default front-end",
        "asc_kd/deployment/quantize.py",
        "        export_artifact(task.frontend, quantized, staged, metadata)",
        "        export_artifact(type(task.frontend)(), quantized, staged, metadata)",
        ["tests/deployment/test_int8.py"],
    ),
    (
        "calibration on silence",
        "asc_kd/deployment/quantize.py",
        "(task.features(w) for w in batches)",
        "(task.features(torch.zeros_like(w)) for w in batches)",
        ["tests/deployment/test_int8.py"],
    ),
    (
        "predict scores the first window only",
        "asc_kd/deployment/predict.py",
        "logits = scorer.logits(windows)",
        "logits = scorer.logits(windows[:1])",
        ["tests/deployment/test_submission.py"],
    ),
    (
        "predict averages window probabilities",
        "asc_kd/deployment/predict.py",
        "file_logits(logits).softmax(-1)",
        "logits.softmax(-1).mean(0)",
        ["tests/evaluation/test_file_score.py"],
    ),
    (
        "student eval band up to Nyquist",
        "asc_kd/models/frontends.py",
        "mel_fb = self.filterbank(fmin, self.fmax)",
        "mel_fb = self.filterbank(fmin, sample_rate / 2)",
        ["tests/models/test_frontends.py"],
    ),
    (
        "student band jitter off in training",
        "asc_kd/models/frontends.py",
        "if self.training and (self.fmin_aug_range > 1 or self.fmax_aug_range > 1):",
        "if False:",
        ["tests/models/test_frontends.py"],
    ),
    (
        "student fmax jitter off where fmin does not jitter",
        "asc_kd/models/frontends.py",
        "if self.training and (self.fmin_aug_range > 1 or self.fmax_aug_range > 1):",
        "if self.training and self.fmin_aug_range > 1:",
        ["tests/models/test_frontends.py"],
    ),
    (
        "student frequency masks off",
        "asc_kd/models/frontends.py",
        "            mel = mask_time_frequency(mel, self.freqm, self.timem)\n",
        "            pass\n",
        ["tests/models/test_frontends.py"],
    ),
    (
        "predict in training mode",
        "asc_kd/deployment/predict.py",
        "    task = load_task(path)\n",
        "    task = load_task(path).train()\n",
        ["tests/deployment/test_submission.py"],
    ),
    (
        "pipeline --force ignored",
        "asc_kd/runs/pipeline.py",
        '        forced = self.config.force and _stage_of(record.get("key", "")) in self.config.stages\n',
        "        forced = False\n",
        ["tests/runs/test_pipeline.py"],
    ),
    # -- issue 22, section 7: the areas where deliberate breaks once left every test green --------
    (
        "Freq-MixStyle mean not detached",
        "asc_kd/augmentations/spectrogram.py",
        "mean = x.mean(dim=(1, 3), keepdim=True).detach()",
        "mean = x.mean(dim=(1, 3), keepdim=True)",
        ["tests/augmentations/test_mixstyle_gradients.py"],
    ),
    (
        "Freq-MixStyle std not detached",
        "asc_kd/augmentations/spectrogram.py",
        "std = (unbiased_var(x, mean, (1, 3)) + eps).sqrt().detach()",
        "std = (unbiased_var(x, mean, (1, 3)) + eps).sqrt()",
        ["tests/augmentations/test_mixstyle_gradients.py"],
    ),
    (
        "log loss not clipped",
        "asc_kd/evaluation/metrics.py",
        "log_probs = log_probs.clamp(min=torch.log(torch.tensor(LOG_LOSS_EPS, dtype=torch.float64)))",
        "log_probs = log_probs",
        ["tests/evaluation/test_metric_edges.py"],
    ),
    (
        "log loss clipped at 1e-7",
        "asc_kd/evaluation/metrics.py",
        "LOG_LOSS_EPS = 1e-15",
        "LOG_LOSS_EPS = 1e-7",
        ["tests/evaluation/test_metric_edges.py"],
    ),
    (
        "val loader serves the test split",
        "asc_kd/data/datamodule.py",
        'return self.loader("val") if "val" in self.datasets else []',
        'return self.loader("test") if "val" in self.datasets else []',
        ["tests/data/test_validation_splits.py"],
    ),
    (
        "test loader serves the validation split",
        "asc_kd/data/datamodule.py",
        'DataLoader:\n        return self.loader("test")',
        'DataLoader:\n        return self.val_dataloader() or self.loader("test")',
        ["tests/data/test_validation_splits.py"],
    ),
    (
        "held-out clips trained on too",
        "asc_kd/data/datamodule.py",
        "return train[~held].reset_index(drop=True), train[held].reset_index(drop=True)",
        "return train.reset_index(drop=True), train[held].reset_index(drop=True)",
        ["tests/data/test_validation_splits.py"],
    ),
    (
        "validation none validates on test",
        "asc_kd/data/datamodule.py",
        'elif self.validation == "test":',
        'elif self.validation != "holdout":',
        ["tests/data/test_validation_splits.py"],
    ),
    (
        "Table 1 ensemble row of every teacher",
        "asc_kd/training/logits.py",
        "            if run.in_ensemble:\n                ensemble_test = ",
        "            if True:\n                ensemble_test = ",
        ["tests/runs/test_table1_ensemble.py"],
    ),
    (
        "Table 1 ensemble row divided by all teachers",
        "asc_kd/training/logits.py",
        "ensemble_test = ensemble_test + test_logits / len(members)",
        "ensemble_test = ensemble_test + test_logits / len(teachers)",
        ["tests/runs/test_table1_ensemble.py"],
    ),
    (
        "logits stage ignores --ensemble",
        "asc_kd/training/logits.py",
        "replace(t, in_ensemble=t.name in members)",
        "replace(t, in_ensemble=True)",
        ["tests/runs/test_table1_ensemble.py"],
    ),
    (
        "logits run declares every teacher",
        "asc_kd/training/logits.py",
        "record_logits(run, [r.source for r in runs if r.in_ensemble], out, table, frame)",
        "record_logits(run, [r.source for r in runs], out, table, frame)",
        ["tests/runs/test_table1_ensemble.py"],
    ),
    (
        "the pipeline's logits stage reads other data than the command",
        "asc_kd/runs/pipeline.py",
        "            GivenData(self._data()),\n            out,",
        '            GivenData({**self._data(), "eval_batch_size": 8}),\n            out,',
        ["tests/runs/test_table1_ensemble.py"],
    ),
    (
        "the pipeline's quantize stage reads other data than the command",
        "asc_kd/runs/pipeline.py",
        "                GivenData(self._data()),\n                artifact,",
        '                GivenData({**self._data(), "num_workers": 2}),\n                artifact,',
        ["tests/deployment/test_quantize.py"],
    ),
    (
        "the quantize stage reads clips at another rate than its model's",
        "asc_kd/deployment/quantize.py",
        "build_datamodule(data, {**QUANTIZE_DATA_DEFAULTS, **fit_defaults(data, fits)})",
        "build_datamodule(data, QUANTIZE_DATA_DEFAULTS)",
        ["tests/data/test_options.py"],
    ),
    (
        "a fit prints its files from the library",
        "asc_kd/training/fit.py",
        "            cli.summary = summary\n",
        "            cli.summary = summary\n            print(run_files(summary))\n",
        ["tests/project/test_architecture.py"],
    ),
    (
        "a logits file's sampled fingerprint is not compared",
        "asc_kd/data/datamodule.py",
        '        recorded = record.get("dataset_fingerprint")\n        if not recorded:',
        '        recorded = record.get("dataset_fingerprint")\n        if True:',
        ["tests/data/test_datamodule.py"],
    ),
    (
        "int8 report counts MACs on the default shape",
        "asc_kd/deployment/quantize.py",
        "complexity = complexity_record(task.model, task.input_shape())",
        "complexity = complexity_record(task.model, (1, 1, 256, 44))",
        ["tests/deployment/test_int8_complexity_shape.py"],
    ),
    (
        "complexity check on the default shape",
        "asc_kd/callbacks/complexity_check.py",
        "self.result = count_complexity(pl_module.model, shape, self.precision)",
        "self.result = count_complexity(pl_module.model, precision=self.precision)",
        ["tests/deployment/test_int8_complexity_shape.py"],
    ),
    (
        "learning rate steps once per epoch",
        "asc_kd/tasks/classification.py",
        '"interval": "step"',
        '"interval": "epoch"',
        ["tests/tasks/test_lr_steps.py"],
    ),
    (
        "schedule counts batches, not optimiser steps",
        "asc_kd/tasks/classification.py",
        "return math.ceil(trainer.estimated_stepping_batches / max_epochs)",
        "return math.ceil(trainer.estimated_stepping_batches * trainer.accumulate_grad_batches / max_epochs)",
        ["tests/tasks/test_lr_steps.py"],
    ),
    (
        "schedule reads steps as epochs",
        "asc_kd/tasks/classification.py",
        "                step / steps_per_epoch,\n",
        "                step,\n",
        ["tests/tasks/test_lr_steps.py"],
    ),
    (
        "online teachers follow the student's mode",
        "asc_kd/tasks/distillation.py",
        "            teacher.eval()  # teachers never train",
        "            teacher.train(mode)  # teachers never train",
        ["tests/tasks/test_teacher_mode.py"],
    ),
    (
        "checkpoint records no dataset fingerprint",
        "asc_kd/tasks/classification.py",
        '**_data_record(getattr(trainer, "datamodule", None)),',
        '"dataset_fingerprint": None,',
        ["tests/tasks/test_checkpoint_data.py"],
    ),
    (
        "checkpoint records no content hash",
        "asc_kd/data/datamodule.py",
        '"dataset_content_hash": self.content_hash}',
        '"dataset_content_hash": None}',
        ["tests/tasks/test_checkpoint_data.py"],
    ),
    (
        "fingerprint of the training clips only",
        "asc_kd/data/datamodule.py",
        'list(dict.fromkeys([*frames["train"]["filename"], *frames["test"]["filename"]]))',
        'list(dict.fromkeys(frames["train"]["filename"]))',
        ["tests/tasks/test_checkpoint_data.py"],
    ),
    (
        "fit declares no online teachers",
        "asc_kd/tracking/lineage.py",
        "    inputs += [model_ref(path) for path in teacher_checkpoints]",
        "    inputs += []",
        ["tests/tracking/test_lineage_inputs.py"],
    ),
    (
        "fit declares no logits file",
        "asc_kd/tracking/lineage.py",
        "    inputs = [logits_ref(teacher_logits)] if teacher_logits else []",
        "    inputs = []",
        ["tests/tracking/test_lineage_inputs.py"],
    ),
    (
        "tables run declares no int8 models",
        "asc_kd/tracking/lineage.py",
        "    inputs += [int8_ref(artifact, checkpoint) for checkpoint, artifact in students]\n",
        "",
        ["tests/tracking/test_lineage_inputs.py"],
    ),
    (
        "quantize run declares nothing",
        "asc_kd/tracking/lineage.py",
        "    inputs = [model_ref(checkpoint)]\n    declare_inputs(run, inputs)",
        "    inputs = [model_ref(checkpoint)]\n    declare_inputs(run, [])",
        ["tests/tracking/test_lineage_inputs.py"],
    ),
    (
        "windows scored against other clips' labels",
        "asc_kd/tasks/classification.py",
        'batch["target"].repeat_interleave(n)',
        'batch["target"].repeat(n)',
        ["tests/evaluation/test_long_clips.py"],
    ),
    (
        "file score without the end-aligned window",
        "asc_kd/evaluation/metrics.py",
        "return window_logits.mean(dim=-2)",
        "return window_logits[..., :-1, :].mean(dim=-2)",
        ["tests/evaluation/test_long_clips.py"],
    ),
    (
        "file score from the first window",
        "asc_kd/evaluation/metrics.py",
        "return window_logits.mean(dim=-2)",
        "return window_logits[..., 0, :]",
        ["tests/evaluation/test_long_clips.py"],
    ),
    (
        "file score from mean probabilities",
        "asc_kd/evaluation/metrics.py",
        "return window_logits.mean(dim=-2)",
        "return window_logits.softmax(-1).mean(dim=-2).log()",
        ["tests/evaluation/test_long_clips.py"],
    ),
    (
        "logits export keeps a long clip's first window",
        "asc_kd/training/logits.py",
        "        save_logits(out, keys, file_logits(ensemble), metadata)",
        "        save_logits(out, keys, ensemble[..., 0, :], metadata)",
        ["tests/evaluation/test_long_clips.py"],
    ),
    (
        "time roll never applied",
        "asc_kd/data/datamodule.py",
        "round(self.hparams.roll_seconds * self.hparams.sample_rate))",
        "0)",
        ["tests/data/test_datamodule.py"],
    ),
    (
        "a local job that raised recorded COMPLETED",
        "asc_kd/runs/executors.py",
        '            record.update(state="FAILED", ended=_stamp(time.time()))',
        '            record.update(state="COMPLETED", ended=_stamp(time.time()))',
        ["tests/runs/test_executors.py"],
    ),
    (
        "an inline job that raised recorded COMPLETED",
        "asc_kd/runs/executors.py",
        "            result = job.call()\n",
        "            try:\n                result = job.call()\n            except Exception:\n"
        '                result = {"value": None, "started": None, "ended": None}\n',
        ["tests/runs/test_executors.py"],
    ),
    (
        "TAU edition from the first clip alone",
        "asc_kd/data/tau.py",
        "    picked = [*lines[::step][: DETECTION_SAMPLE - 1], lines[-1]]\n",
        "    picked = lines[:1]\n",
        ["tests/data/test_check.py"],
    ),
    (
        "TAU22's clip-numbered names ignored",
        "asc_kd/data/tau.py",
        "    if names and sum(map(_is_tau22_name, names)) * 2 > len(names):",
        "    if False:",
        ["tests/data/test_tau.py"],
    ),
    (
        "archive folder name ignored",
        "asc_kd/data/tau.py",
        "    folder = ARCHIVE_FOLDER.search(root.resolve().name)",
        "    folder = None",
        ["tests/data/test_tau.py"],
    ),
    (
        "generator's recorded layout ignored",
        "asc_kd/data/layouts.py",
        "    generated = _generated_layout(root)",
        "    generated = None",
        ["tests/data/test_tau.py"],
    ),
    (
        "check without the line naming clips of another length",
        "asc_kd/data/check.py",
        "        problems[:0] = _length_problems(root, seconds, template)",
        "        problems[:0] = []",
        ["tests/data/test_check.py"],
    ),
    (
        "check names one class of one recording, not all",
        "asc_kd/data/folders.py",
        "            names = [name for name, _, _ in whole]\n",
        "            names = [name for name, _, _ in whole[:1]]\n",
        ["tests/data/test_check.py::test_clip_lengths_and_recordings_of_four_classes_are_found_in_one_run"],
    ),
    (
        "check reads no split after a problem",
        "asc_kd/data/check.py",
        "        frames = dataset.frames()\n",
        "        frames = dataset.frames() if not problems else {}\n",
        ["tests/data/test_check.py::test_clip_lengths_and_recordings_of_four_classes_are_found_in_one_run"],
    ),
    (
        "check's summary counts no channels",
        "asc_kd/data/check.py",
        "            Counter(info.channels for info in headers),\n",
        "            Counter(1 for info in headers),\n",
        ["tests/data/test_check.py::test_the_summary_counts_rates_channels_lengths_and_extensions"],
    ),
    (
        "check prints a device table for a set without devices",
        "asc_kd/data/check.py",
        '    if (result.counts["device"] != "-").any():\n',
        "    if True:\n",
        ["tests/data/test_check.py::test_the_summary_counts_rates_channels_lengths_and_extensions"],
    ),
    (
        "check refuses a missing root in other words than the fit",
        "asc_kd/check.py",
        "    datamodule.ensure_root()\n",
        "",
        ["tests/data/test_check.py::test_a_missing_or_empty_root_gets_the_fits_message"],
    ),
    (
        "undecodable file with libsndfile's generic text",
        "asc_kd/data/audio.py",
        "        raise _undecodable(path, err) from err",
        '        raise AudioFileError(f"{path}: not a readable audio file ({_reason(err, path)})") from err',
        ["tests/data/test_audio.py"],
    ),
    (
        "long clips lose their tail window",
        "asc_kd/data/audio.py",
        "        starts.append(n_samples - size)\n",
        "        pass\n",
        ["tests/evaluation/test_long_clips.py"],
    ),
    (
        "a time limit of 0 minutes taken",
        "asc_kd/runs/resources.py",
        'MINIMUM = {"time_min": 1,',
        'MINIMUM = {"time_min": -(10**9),',
        ["tests/runs/test_resources.py"],
    ),
    (
        "any memory size taken",
        "asc_kd/runs/resources.py",
        "        if wanted.mem is not None and not MEMORY.fullmatch(wanted.mem):",
        "        if False:",
        ["tests/runs/test_resources.py"],
    ),
    (
        "partition, account and QoS not checked against the cluster",
        "asc_kd/runs/resources.py",
        "                if known is not None and _folded(part, fold)",
        "                if False and _folded(part, fold)",
        ["tests/runs/test_resources.py"],
    ),
    (
        "more memory than any node taken",
        "asc_kd/runs/resources.py",
        "    if sizes and _megabytes(wanted.mem) > max(sizes):",
        "    if False:",
        ["tests/runs/test_resources.py"],
    ),
    (
        "--slurm-param not asked of sbatch",
        "asc_kd/runs/resources.py",
        "    if answer is None or answer[0] == 0:\n        return\n    said",
        "    return\n    said",
        ["tests/runs/test_resources.py"],
    ),
    (
        "a time limit inside the signal delay not warned of",
        "asc_kd/runs/resources.py",
        "        if wanted.time_min * 60 <= SIGNAL_DELAY_S + SIGNAL_EARLY_S",
        "        if wanted.time_min * 60 <= 0",
        ["tests/runs/test_resources.py"],
    ),
    (
        "resources checked only when a stage submits",
        "asc_kd/runs/pipeline.py",
        "        check_resources(config.executor)",
        "        pass",
        ["tests/runs/test_resources.py"],
    ),
    (
        "sbatch's refusal at submission left as submitit's traceback",
        "asc_kd/runs/executors.py",
        "        with sbatch_refusals(job.label, job.kind, resources):\n",
        "        if True:\n",
        ["tests/runs/test_resources.py"],
    ),
    (
        "commands after a fit ignore its recorded data options",
        "asc_kd/data/options.py",
        "        defaults[key] = value\n",
        "        pass\n",
        ["tests/data/test_options.py"],
    ),
    (
        "a typed data option that contradicts the fit goes unnamed",
        "asc_kd/data/options.py",
        "                _contradiction(key, given.values[key], record[key], source)",
        "                pass",
        ["tests/data/test_options.py"],
    ),
    (
        "another rate or window than the model's only warned of",
        "asc_kd/data/options.py",
        "    if key in MODEL_OPTIONS:\n        raise ConfigError(\n",
        "    if key in ():\n        raise ConfigError(\n",
        ["tests/data/test_options.py"],
    ),
    (
        "teachers fit on other clips exported together",
        "asc_kd/data/options.py",
        "        if other is not None and key in CLIP_OPTIONS:",
        "        if False:",
        ["tests/data/test_options.py"],
    ),
    (
        "the checkpoint's DataModule record ignored for config.yaml",
        "asc_kd/tasks/restore.py",
        'data = checkpoint.get("datamodule_hyper_parameters")',
        "data = None",
        ["tests/tasks/test_restore.py"],
    ),
    (
        "a fit's held-out split not found in its run folder",
        "asc_kd/tasks/restore.py",
        '            options["holdout_file"] = str(run / HOLDOUT_FILE)',
        "            pass",
        ["tests/tasks/test_restore.py"],
    ),
    (
        "int8 artifact without the data it was quantized on",
        "asc_kd/deployment/quantize.py",
        '"data": recorded_options(getattr(datamodule, "hparams", None) or {}),',
        '"data": {},',
        ["tests/end_to_end/test_commands_after_a_fit.py"],
    ),
    (
        "predict ignores the model's recorded data options",
        "asc_kd/predict.py",
        "fit_defaults(data, {args.model: scorer.data})",
        "fit_defaults(data, {})",
        ["tests/end_to_end/test_commands_after_a_fit.py"],
    ),
    (
        "batch limit 1 read as the whole epoch",
        "asc_kd/training/fit.py",
        "        keep_typed_ints(parser)\n",
        "",
        ["tests/training/test_batch_limits.py"],
    ),
    (
        "fit checks after the trainer writes",
        "asc_kd/training/fit.py",
        "        refuse_before_writing(cli, ckpt_path)\n",
        "",
        ["tests/end_to_end/test_refusals.py"],
    ),
    (
        "complexity refused only at fit start",
        "asc_kd/training/fit.py",
        "            callback.check(cli.model)\n",
        "            pass\n",
        ["tests/end_to_end/test_refusals.py"],
    ),
    (
        "resume on other data refused only at the checkpoint load",
        "asc_kd/training/fit.py",
        "            trainer.checkpoint_callback.check_resumed_data(checkpoint, ckpt_path, datamodule)\n",
        "            pass\n",
        ["tests/end_to_end/test_refusals.py"],
    ),
    (
        "another model's checkpoint refused only at the load",
        "asc_kd/training/fit.py",
        "        _refuse_other_weights(cli.model, checkpoint, ckpt_path)\n",
        "",
        ["tests/end_to_end/test_refusals.py"],
    ),
    (
        "teacher logits checked only in setup",
        "asc_kd/data/datamodule.py",
        "            self._teacher_logits(self._train_dataset(frames, sources))\n",
        "            pass\n",
        ["tests/end_to_end/test_refusals.py"],
    ),
    (
        "quantize on data of other classes",
        "asc_kd/deployment/quantize.py",
        "    if list(task.classes) != classes:",
        "    if False:",
        ["tests/end_to_end/test_refusals.py"],
    ),
    (
        "quantize leaves an artifact without its report",
        "asc_kd/deployment/quantize.py",
        "        staged.unlink(missing_ok=True)\n",
        "        pass\n",
        ["tests/end_to_end/test_refusals.py"],
    ),
    (
        "logits check only the logits file's folder",
        "asc_kd/training/logits.py",
        "    for output in (out, table):",
        "    for output in (out,):",
        ["tests/end_to_end/test_refusals.py"],
    ),
    (
        "run identity keeps the progress bar",
        "asc_kd/runs/record.py",
        '    "trainer.enable_progress_bar",\n',
        "",
        ["tests/runs/test_record.py"],
    ),
    (
        "a second writer of a run folder is let in",
        "asc_kd/runs/record.py",
        "            held.enter_context(folder_lock(record, purpose, None, "
        'action="written", blocking=False))\n',
        "            pass\n",
        ["tests/runs/test_record.py"],
    ),
    (
        "a requeued job's first call starts from epoch 0",
        "asc_kd/runs/executors.py",
        "        function = self.resume if resuming else self.function\n",
        "        function = self.function\n",
        ["tests/runs/test_record.py"],
    ),
    (
        "a job stopped by SIGTERM is recorded failed",
        "asc_kd/runs/executors.py",
        "                    if self.stopped_by is not None or isinstance(error, Stopped) or self.requeued:"
        "\n",
        "                    if False:\n",
        ["tests/runs/test_record.py"],
    ),
    (
        "a live owner is not adopted but started again",
        "asc_kd/runs/pipeline.py",
        '                return "adopt", record\n',
        '                return "new", record\n',
        [
            "tests/runs/test_pipeline.py::test_a_run_whose_owner_lives_is_adopted_and_one_whose_owner_died_is_resumed"
        ],
    ),
    (
        "a changed configuration is reused",
        "asc_kd/runs/pipeline.py",
        "            if old == new or forced or not _has_progress(record, path):\n",
        "            if True:\n",
        [
            "tests/runs/test_pipeline.py::test_a_changed_config_is_refused_naming_its_keys_writing_nothing_then_done_with_force"
        ],
    ),
    (
        "the demo overlay composes after your recipe",
        "asc_kd/runs/pipeline.py",
        "    return tuple(chain + [r for r in recipes if not _packaged(r)])\n",
        "    return tuple([r for r in recipes if not _packaged(r)] + chain)\n",
        ["tests/runs/test_pipeline.py::test_your_own_recipe_composes_last_and_a_flag_over_it_is_said"],
    ),
    (
        "a silent scheduler is read as ended jobs",
        "asc_kd/runs/executors.py",
        '    if listed.returncode != 0 and "Invalid job id" not in listed.stderr:\n        return None\n',
        "",
        ["tests/runs/test_executors.py"],
    ),
    (
        "status asks squeue once per owner, not once for all",
        "asc_kd/runs/executors.py",
        '    job_ids = sorted({str(o["job_id"]) for o in owners if o and _is_slurm(o)})',
        "    job_ids = []",
        ["tests/runs/test_record.py"],
    ),
    (
        "the teacher logits rehashed for every student",
        "asc_kd/runs/pipeline.py",
        "        if key not in self._hashes:\n",
        "        if True:\n",
        ["tests/runs/test_record.py"],
    ),
    (
        "a job's torch takes every core, not the CPUs it was given",
        "asc_kd/runs/executors.py",
        "        self.stopped_by = None\n        self._use_given_cpus()\n",
        "        self.stopped_by = None\n",
        ["tests/runs/test_executors.py"],
    ),
    (
        "slurmstepd's memory kill in the job's log not read (SLURM says FAILED)",
        "asc_kd/runs/executors.py",
        "    return any(line in tail for line in MEMORY_KILLED)",
        "    return False",
        ["tests/runs/test_executors.py"],
    ),
    (
        "the package's results are one seed's",
        "asc_kd/runs/package.py",
        "    values = [run.int8_metrics.get(key) for run in runs]\n",
        "    values = [run.int8_metrics.get(key) for run in runs[:1]]\n",
        [
            "tests/runs/test_dcase_package.py::test_the_numbers_are_the_runs_summaries_and_the_complexity_commands"
        ],
    ),
    (
        "the package counts fp32 parameter memory",
        "asc_kd/runs/package.py",
        '    counted = count_complexity(model, shape, "int8")\n',
        '    counted = count_complexity(model, shape, "fp32")\n',
        [
            "tests/runs/test_dcase_package.py::test_the_numbers_are_the_runs_summaries_and_the_complexity_commands"
        ],
    ),
    (
        "the package writes over a non-empty --out",
        "asc_kd/runs/package.py",
        "        if out.is_dir() and any(out.iterdir()):\n",
        "        if False:\n",
        ["tests/runs/test_dcase_package.py::test_refusals_come_before_anything_is_written"],
    ),
    (
        "quantize names the artifact after the checkpoint file, not its run",
        "asc_kd/deployment/quantize.py",
        "Path(checkpoint).parent / int8_name(task)",
        'Path(checkpoint).with_suffix(".int8.pt")',
        [
            "tests/deployment/test_quantize.py::test_the_default_artifact_is_named_after_the_checkpoints_run_and_found_by_it"
        ],
    ),
    (
        "complexity of an int8 artifact counted on another input than its checkpoint's",
        "asc_kd/deployment/quantize.py",
        "    complexity = complexity_record(task.model, task.input_shape())\n",
        "    complexity = complexity_record(task.model, task.model.input_shape)\n",
        [
            "tests/deployment/test_int8_complexity_shape.py::test_complexity_of_an_int8_artifact_is_its_checkpoints"
        ],
    ),
    (
        "training losses logged only every log_every_n_steps steps",
        "asc_kd/tasks/classification.py",
        "            self.log_dict(means, sync_dist=True)\n",
        "            pass\n",
        ["tests/training/test_fit.py::test_a_student_logs_its_training_loss_every_epoch_however_short"],
    ),
    (
        "the epoch mean of a loss not weighted by the clips of each step",
        "asc_kd/tasks/classification.py",
        "value.detach() * batch_size\n",
        "value.detach() * len(means)\n",
        ["tests/tasks/test_training_logs.py"],
    ),
    (
        "step values logged on every step, not only those the loggers write",
        "asc_kd/tasks/classification.py",
        "% max(1, trainer.log_every_n_steps) == 0 or trainer.should_stop\n",
        "% max(1, trainer.log_every_n_steps) == 0 or True\n",
        ["tests/tasks/test_training_logs.py"],
    ),
    (
        "the task's precision ignored: the model always in fp32",
        "asc_kd/tasks/classification.py",
        "        with autocast(x.device, self.hparams.precision):\n",
        '        with autocast(x.device, "fp32"):\n',
        ["tests/tasks/test_precision.py"],
    ),
    (
        "bf16 logits handed on in bf16",
        "asc_kd/tasks/classification.py",
        "        return logits.float()  # the losses and metrics work in fp32 whatever ran\n",
        "        return logits\n",
        ["tests/tasks/test_precision.py"],
    ),
    (
        "the precision that ran always recorded as fp32",
        "asc_kd/tasks/classification.py",
        '        if uses_bf16(self.device, self.hparams.precision):\n            return "bf16"\n',
        '        if False:\n            return "bf16"\n',
        ["tests/tasks/test_precision.py"],
    ),
    (
        "quantization scores the bf16-autocast task as its fp32 model",
        "asc_kd/deployment/quantize.py",
        '"fp32": evaluate(lambda w: task.model(task.features(w)), "fp32 test"),',
        '"fp32": evaluate(task, "fp32 test"),',
        [
            "tests/tasks/test_precision.py::test_quantization_is_bit_for_bit_the_same_whatever_precision_the_task_trained_in"
        ],
    ),
    (
        "Table 2's float row labelled fp32 whatever ran",
        "asc_kd/evaluation/tables.py",
        '        label = float_precision if precision == "fp32" else precision\n',
        "        label = precision\n",
        ["tests/tasks/test_precision.py::test_table2_labels_the_float_row_with_the_precision_that_ran"],
    ),
    (
        "Freq-MixStyle's variance without Bessel's correction",
        "asc_kd/augmentations/spectrogram.py",
        "* (count / (count - 1))",
        "* 1.0",
        ["tests/tasks/test_training_logs.py::test_unbiased_var_is_torchs_var"],
    ),
    (
        "Freq-MixStyle's shift without the input's own mean",
        "asc_kd/augmentations/spectrogram.py",
        "torch.addcmul(mixed_mean - mean * scale, x, scale)",
        "torch.addcmul(mixed_mean, x, scale)",
        ["tests/tasks/test_training_logs.py::test_freq_mixstyle_equals_its_definition_written_out"],
    ),
    (
        "Mixup's weights swapped between a clip and its partner",
        "asc_kd/augmentations/mixing.py",
        "        return torch.index_select(x, 0, perm).lerp_(x, weight)\n",
        "        return x.lerp(torch.index_select(x, 0, perm), weight)\n",
        ["tests/augmentations/test_mixing.py"],
    ),
    (
        "Mixup's partners taken in batch order instead of by the permutation",
        "asc_kd/augmentations/mixing.py",
        "        return torch.index_select(x, 0, perm).lerp_(x, weight)\n",
        "        return x.clone().lerp_(x, weight)\n",
        [
            "tests/augmentations/test_mixing.py::"
            "test_mixup_waveform_is_bit_equal_to_the_lerp_of_each_clip_and_its_partner"
        ],
    ),
    (
        "bench train --fit's bare reference is the median step again, not its span's rate",
        "asc_kd/benchmarks/student.py",
        "            bare = rate(lambda: step(waveform, target, teacher), bare_seconds, warmup=0)\n",
        '            bare = batch_size / interleaved({"bare": lambda: step(waveform, target, teacher)}, '
        'bare_seconds)["bare"]\n',
        ["tests/benchmarks/test_benchmarks.py::test_bench_fit_epoch_times_a_real_fit_epoch"],
    ),
    (
        "the cache's rows read through np.memmap's per-row hooks again",
        "asc_kd/data/cache.py",
        "            ).view(np.ndarray)\n",
        "            )\n",
        ["tests/data/test_cache.py::test_cache_rows_are_a_read_only_plain_array_of_the_file"],
    ),
    (
        "PaSST's bf16 attention on a CPU without AMX takes the fused kernel after all",
        "asc_kd/models/passt.py",
        'if q.device.type == "cpu" and q.dtype == torch.bfloat16 and not self.fused_cpu_bf16:',
        'if q.device.type == "cpu" and q.dtype == torch.bfloat16 and self.fused_cpu_bf16:',
        [
            "tests/models/test_teachers.py::test_passt_attention_in_bf16_on_a_cpu_without_amx_is_hear21passts_own",
            "tests/models/test_teachers.py::test_passt_attention_takes_the_fused_kernel_with_amx_or_in_fp32",
        ],
    ),
    (
        "PaSST's attention takes the matmuls in fp32 too",
        "asc_kd/models/passt.py",
        'if q.device.type == "cpu" and q.dtype == torch.bfloat16 and not self.fused_cpu_bf16:',
        'if q.device.type == "cpu" and not self.fused_cpu_bf16:',
        ["tests/models/test_teachers.py::test_passt_attention_takes_the_fused_kernel_with_amx_or_in_fp32"],
    ),
    (
        "PaSST's attention ignores whether the CPU has AMX tiles",
        "asc_kd/models/passt.py",
        "                block.attn.fused_cpu_bf16 = amx\n",
        "                block.attn.fused_cpu_bf16 = True\n",
        [
            "tests/models/test_teachers.py::test_passt_attention_takes_the_fused_bf16_kernel_where_the_cpu_has_amx"
        ],
    ),
    (
        "bench attention times each path under the other's label",
        "asc_kd/benchmarks/teacher.py",
        'for name, fused in (("fused", True), ("matmul", False)):',
        'for name, fused in (("fused", False), ("matmul", True)):',
        [
            "tests/benchmarks/test_benchmarks.py::test_bench_attention_times_both_paths_at_the_passt_recipes_tokens"
        ],
    ),
    (
        "the pipeline makes the synthetic scenes only for a cluster executor again",
        "asc_kd/runs/pipeline.py",
        '        if stages & {"teachers", "logits", "students", "quantize"}:\n',
        '        if self.config.executor.executor != "inline" and stages & '
        '{"teachers", "logits", "students"}:\n',
        [
            "tests/data/test_synthetic_only_when_asked.py::"
            "test_the_demo_pipeline_generates_only_into_the_demo_root_or_where_asked"
        ],
    ),
    (
        "bench demo drops the scenes the driver finished within the first fit's second",
        "asc_kd/benchmarks/demo.py",
        "previous < scenes_end < first_teacher + 1:",
        "previous < scenes_end < first_teacher:",
        ["tests/benchmarks/test_benchmarks.py::test_the_demo_stages_follow_each_other_from_the_times_read"],
    ),
    (
        "bench demo's stage end taken from the first run of a kind, not the last",
        "asc_kd/benchmarks/demo.py",
        'ends[record["kind"]] = max(ends.get(record["kind"], 0.0), end)',
        'ends[record["kind"]] = min(ends.get(record["kind"], end), end)',
        ["tests/benchmarks/test_benchmarks.py::test_the_demo_stages_are_read_from_the_runs_records"],
    ),
    (
        "the power spectrum without the imaginary part",
        "asc_kd/models/frontends.py",
        "    return torch.mul(spec.real, spec.real, out=out).addcmul_(spec.imag, spec.imag)\n",
        "    return torch.mul(spec.real, spec.real, out=out)\n",
        ["tests/models/test_frontends.py"],
    ),
    (
        "a folder without CP-JKU's files taken for their checkout",
        "asc_kd/benchmarks/cpjku.py",
        "    missing = [name for name in NEEDED if not (root / name).is_file()]\n",
        "    missing = []\n",
        [
            "tests/benchmarks/test_benchmarks.py::test_a_folder_that_is_not_cpjkus_checkout_is_named_with_what_it_lacks"
        ],
    ),
    (
        "a system's seeds drawn in different colours",
        "asc_kd/runs/results.py",
        '                "color": colour[system],\n                "label": run,',
        '                "color": PALETTE[i],\n                "label": run,',
        ["tests/runs/test_results.py"],
    ),
    (
        "the markdown tables show the mean without the std",
        "asc_kd/evaluation/tables.py",
        'f"{mean:.{digits}f} ± {std:.{digits}f}"',
        'f"{mean:.{digits}f}"',
        [
            "tests/evaluation/test_tables.py::test_the_markdown_shows_mean_and_std_in_one_column_and_the_csv_keeps_the_numbers"
        ],
    ),
    (
        "a table's title names no test split",
        "asc_kd/evaluation/tables.py",
        '    return f"Table {number}: {rows} on {where}" + (SYNTHETIC_NOTE if synthetic else "")\n',
        '    return f"Table {number}: {rows} on the development-test split"\n',
        ["tests/evaluation/test_tables.py::test_a_title_names_the_test_split_it_was_scored_on"],
    ),
    (
        "asc-kd tables leaves out the logits export's Table 1 (and its ensemble row)",
        "asc_kd/evaluation/tables.py",
        '        rows["table1"] += record["rows"]\n',
        "",
        [
            "tests/evaluation/test_tables.py::"
            "test_table1_from_runs_takes_the_logits_exports_rows_and_adds_the_teachers_it_did_not_score"
        ],
    ),
    (
        "an unknown option is refused without the closest spelling",
        "asc_kd/core/command_line.py",
        'hint = f"did you mean {close[0]}?" if close else f"`{parser.prog} --help` lists the options"',
        'hint = f"`{parser.prog} --help` lists the options"',
        [
            "tests/core/test_help.py::test_a_misspelt_option_or_choice_is_one_line_naming_the_closest[pipeline]"
        ],
    ),
    (
        "a data option without data. is not named in the fit's spelling",
        "asc_kd/core/command_line.py",
        '        if name.startswith("--") and fit_name in valid:\n',
        "        if False:\n",
        ["tests/core/test_help.py::test_a_data_option_typed_without_data_is_named_in_the_fits_spelling"],
    ),
    (
        "fit refuses a misspelt option with exit code 1",
        "asc_kd/training/fit.py",
        '    return (UsageError if message.startswith("command line: ") else ConfigError)(message)\n',
        "    return ConfigError(message)\n",
        ["tests/core/test_help.py::test_a_misspelt_option_or_choice_is_one_line_naming_the_closest[fit]"],
    ),
    (
        "the fit's misspelt choice is refused without the closest",
        "asc_kd/training/fit.py",
        "        if choices and value is not None and text not in choices:",
        "        if False:",
        ["tests/core/test_help.py::test_a_misspelt_option_or_choice_is_one_line_naming_the_closest[fit]"],
    ),
    (
        "a command's data option with a misspelt choice is refused in jsonargparse's words",
        "asc_kd/core/command_line.py",
        "                    if choices and value not in choices:\n",
        "                    if False:\n",
        ["tests/data/test_options.py::test_a_bad_data_value_ends_a_command_in_one_line_naming_the_option"],
    ),
    (
        "asc-kd COMMAND prints the usage of python -m asc_kd.COMMAND",
        "asc_kd/core/command_line.py",
        "parser = CommandParser(prog=program_name(prog), description=description)",
        "parser = CommandParser(prog=prog, description=description)",
        ["tests/core/test_help.py::test_a_misspelt_option_or_choice_is_one_line_naming_the_closest[status]"],
    ),
    (
        "a closed pipe ends a command with a traceback",
        "asc_kd/core/command_line.py",
        "            sys.stdout.flush()  # here, where a closed pipe can still be told apart\n",
        "            pass\n",
        ["tests/core/test_help.py::test_a_reader_that_leaves_ends_the_command_quietly"],
    ),
    (
        "asc-kd docs lists the pages without their titles",
        "asc_kd/docs/__main__.py",
        "{heading(path)}",
        "{path.name}",
        ["tests/core/test_help.py::test_asc_kd_docs_lists_and_prints_the_pages"],
    ),
    (
        "the wheel leaves the docs out",
        "pyproject.toml",
        '"asc_kd.docs" = ["pages/*.md", "notebooks/*.ipynb"]\n',
        "",
        ["tests/project/test_packaging.py::test_the_wheel_carries_the_docs_and_the_version"],
    ),
    (
        "a job's line leaves out its elapsed time",
        "asc_kd/runs/record.py",
        '    return "  ".join(part for part in (state, run, elapsed(record), detail) if part)\n',
        '    return "  ".join(part for part in (state, run, detail) if part)\n',
        ["tests/runs/test_record.py::test_a_done_job_is_one_line_with_its_run_time_and_test_accuracy"],
    ),
    (
        "a hint is shown again after every fit",
        "asc_kd/core/noise.py",
        "    if key in _shown:\n        return False\n",
        "",
        ["tests/core/test_noise.py::test_each_hint_is_shown_once_per_process"],
    ),
    (
        "W&B runs print their history and summary blocks",
        "asc_kd/tracking/loggers.py",
        'kwargs["settings"] = wandb.Settings(quiet=wandb_quiet())',
        'kwargs["settings"] = wandb.Settings()',
        ["tests/tracking/test_loggers.py::test_runs_are_quiet_unless_wandb_quiet_says_no"],
    ),
    (
        "a teacher's complexity is called a student's",
        "asc_kd/callbacks/complexity_check.py",
        '"complexity of model %r: %s"',
        '"student complexity of %r: %s"',
        [
            "tests/callbacks/test_complexity_check.py::test_the_line_names_the_model_not_a_role_it_may_not_have"
        ],
    ),
    (
        "a folder imports one above it (training uses runs)",
        "asc_kd/training/fit.py",
        "from asc_kd.evaluation.tables import SUMMARY\n",
        "from asc_kd.evaluation.tables import SUMMARY\nfrom asc_kd.runs.record import RECORD  # noqa: F401\n",
        ["tests/project/test_architecture.py"],
    ),
    (
        "a checkpoint without the spec built on the default spec",
        "asc_kd/tasks/restore.py",
        "    if spec is None:\n        raise CheckpointError(",
        "    if False:\n        raise CheckpointError(",
        ["tests/tasks/test_checkpoint_data.py::test_a_checkpoint_without_the_spec_is_refused_in_one_line"],
    ),
    (
        "a front-end under data: named as an unknown key",
        "asc_kd/training/fit.py",
        '    task_key = next((k for k in TASK_KEYS if key == k or key.startswith(f"{k}.")), None)\n',
        "    task_key = None\n",
        ["tests/training/test_fit.py::test_a_wrong_key_or_value_is_one_line_naming_where_and_what"],
    ),
    (
        "a recipe's front-end under data: read as the default front-end",
        "asc_kd/recipes/__init__.py",
        "        if key in data:  # as a fit would",
        "        if False:  # as a fit would",
        ["tests/training/test_ensemble.py::test_a_recipe_names_its_front_end_in_its_task_not_its_data"],
    ),
    (
        "an atomic folder overwrites or fails on the one another process completed",
        "asc_kd/core/io.py",
        "            if not (path.is_dir() and any(path.iterdir())):\n",
        "            if True:\n",
        ["tests/core/test_io.py"],
    ),
    (
        "Lightning's srun hint shown on a machine with SLURM",
        "asc_kd/core/noise.py",
        '        "ignore", message=r"(?s).*The `srun` command is available on your system but is not used"\n',
        '        "ignore", message=r"(?s).*no such hint"\n',
        ["tests/core/test_noise.py::test_lightning_s_srun_hint_is_never_shown"],
    ),
    (
        "log loss per class summed over the wrong axis (per device)",
        "asc_kd/evaluation/metrics.py",
        "        class_log_loss = self._mean(self.nll_sums.sum(0), confusion.sum(1))",
        "        class_log_loss = self._mean(self.nll_sums.sum(1)[: len(self.classes)], confusion.sum(1))",
        ["tests/evaluation/test_metrics.py"],
    ),
    (
        "a command has no --print_config",
        "asc_kd/core/command_line.py",
        "    parser = CommandParser(prog=program_name(prog), description=description)\n"
        '    parser.add_argument("--config", action=ActionConfigFile, help=_CONFIG_HELP)\n',
        "    parser = CommandParser(prog=program_name(prog), description=description)\n",
        ["tests/core/test_help.py::test_every_command_prints_its_configuration"],
    ),
    (
        "a value of the wrong type is refused in jsonargparse's words",
        "asc_kd/core/command_line.py",
        "                    if not choices and (expected := expected_type(action, value)):\n",
        "                    if False:\n",
        ["tests/data/test_options.py::test_a_bad_data_value_ends_a_command_in_one_line_naming_the_option"],
    ),
    (
        "the pipeline repeats a default of PipelineConfig",
        "asc_kd/pipeline.py",
        'parser.add_argument("--out", default=defaults.out,',
        'parser.add_argument("--out", default="outputs/pipeline_run",',
        ["tests/runs/test_pipeline.py::test_the_options_default_to_the_config_classes"],
    ),
    (
        "a command's defaults are taken for given data options",
        "asc_kd/data/options.py",
        "    given = parser.parse_args(argv, defaults=False)\n",
        "    given = parser.parse_args(argv)\n",
        [
            "tests/end_to_end/test_commands_after_a_fit.py::"
            "test_quantize_with_only_the_root_reads_the_fits_clips_and_records_them"
        ],
    ),
    (
        "the fit refuses a known argument of the model's class",
        "asc_kd/training/fit.py",
        "            if rest[1] in parameters:\n                return None\n",
        "",
        ["tests/training/test_fit.py::test_a_wrong_key_or_value_is_one_line_naming_where_and_what"],
    ),
    (
        "the fit's unknown model argument is named without the closest",
        "asc_kd/training/fit.py",
        "    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)\n    prefix",
        "    close = []\n    prefix",
        ["tests/training/test_fit.py::test_a_wrong_key_or_value_is_one_line_naming_where_and_what"],
    ),
    (
        "the pipeline hands its fits the demo's scenes as a string",
        "asc_kd/runs/pipeline.py",
        '            data["generate_synthetic"] = True\n',
        '            data["generate_synthetic"] = "true"\n',
        ["tests/runs/test_pipeline.py::test_the_data_options_are_the_fits_and_reach_every_fit"],
    ),
    (
        "the pipeline hands a data option after -- to its fits",
        "asc_kd/runs/pipeline.py",
        "        if after_dashes is not None:\n",
        "        if False:\n",
        ["tests/runs/test_pipeline.py::test_a_data_option_after_the_dashes_is_refused"],
    ),
    (
        "bench train --fit builds its data without the given data options",
        "asc_kd/benchmarks/student.py",
        "                **data.values,\n",
        "",
        [
            "tests/data/test_options.py::"
            "test_a_non_default_data_option_reaches_each_commands_datamodule[bench train --fit]"
        ],
    ),
    (
        "restore: keyword overrides ignored",
        "asc_kd/tasks/restore.py",
        "            task = cls(**{**arguments, **(overrides or {})})\n",
        "            task = cls(**arguments)\n",
        ["tests/tasks/test_restore.py::test_keyword_arguments_replace_recorded_hyperparameters"],
    ),
    (
        "restore: a strict load never refuses",
        "asc_kd/tasks/restore.py",
        "    if strict:\n        raise CheckpointError(",
        "    if False:\n        raise CheckpointError(",
        ["tests/tasks/test_restore.py::test_missing_weights_are_refused"],
    ),
    (
        "restore: weights the task lacks pass a strict load",
        "asc_kd/tasks/restore.py",
        "    if unexpected:\n        problems.append(",
        "    if False:\n        problems.append(",
        ["tests/tasks/test_restore.py::test_weights_the_task_does_not_have_are_refused"],
    ),
    (
        "restore: the class's strict_loading ignored",
        "asc_kd/tasks/restore.py",
        "    strict = task.strict_loading if strict is None else strict\n",
        "    strict = True if strict is None else strict\n",
        ["tests/tasks/test_restore.py::test_strict_false_loads_the_weights_both_hold_and_names_the_others"],
    ),
    (
        "restore: map_location ignored",
        "asc_kd/tasks/restore.py",
        "    checkpoint = read_checkpoint(path, map_location=map_location)\n",
        "    checkpoint = read_checkpoint(path)\n",
        ["tests/tasks/test_restore.py::test_map_location_places_the_weights_and_the_task"],
    ),
    (
        "restore: the task stays on the CPU whatever map_location says",
        "asc_kd/tasks/restore.py",
        "        task.to(device)\n",
        "        pass\n",
        ["tests/tasks/test_restore.py::test_map_location_places_the_weights_and_the_task"],
    ),
    (
        "restore: a task class not recorded goes unnoticed",
        "asc_kd/tasks/restore.py",
        "    if not recorded:\n        raise CheckpointError(",
        "    if False:\n        raise CheckpointError(",
        ["tests/tasks/test_restore.py::test_the_class_called_on_needs_no_recorded_class"],
    ),
    (
        "restore: a map_location no device here has called not a checkpoint",
        "asc_kd/tasks/restore.py",
        "    except ConfigError:  # a readable file, a map_location that fits no device here\n"
        "        raise\n",
        "",
        [
            "tests/tasks/test_restore.py::test_map_location_may_be_a_function_and_defaults_to_the_cpu_for_load_task"
        ],
    ),
    (
        "restore: load_from_checkpoint returns eval mode",
        "asc_kd/tasks/classification.py",
        "        return task.train()\n",
        "        return task\n",
        ["tests/tasks/test_restore.py::test_load_from_checkpoint_gives_a_task_in_training_mode"],
    ),
    (
        "restore: load_from_checkpoint builds the recorded class",
        "asc_kd/tasks/classification.py",
        "            cls,\n            map_location=saved_device_or_cpu",
        "            None,\n            map_location=saved_device_or_cpu",
        ["tests/tasks/test_restore.py::test_a_student_loads_as_a_classifier_and_a_classifier_as_a_student"],
    ),
    (
        "restore: load_from_checkpoint without map_location uses torch's default",
        "asc_kd/tasks/classification.py",
        "saved_device_or_cpu if map_location is None else map_location",
        "map_location",
        ["tests/tasks/test_restore.py::test_load_from_checkpoint_is_load_task_for_the_class_it_is_called_on"],
    ),
    (
        "restore: hparams_file silently ignored",
        "asc_kd/tasks/classification.py",
        "        if hparams_file is not None:\n",
        "        if False:\n",
        ["tests/tasks/test_restore.py::test_load_from_checkpoint_refuses_what_asc_kd_does_not_read"],
    ),
    (
        "restore: weights_only=False silently read as True",
        "asc_kd/tasks/classification.py",
        "        if weights_only is False:\n",
        "        if False:\n",
        ["tests/tasks/test_restore.py::test_load_from_checkpoint_refuses_what_asc_kd_does_not_read"],
    ),
    (
        "restore: a stream handed on as a path",
        "asc_kd/tasks/classification.py",
        "        if not isinstance(checkpoint_path, (str, PathLike)):\n",
        "        if False:\n",
        ["tests/tasks/test_restore.py::test_load_from_checkpoint_refuses_what_asc_kd_does_not_read"],
    ),
    (
        "restore: tensors kept on a device the host lacks",
        "asc_kd/core/io.py",
        "    return storage.cpu() if missing.get(kind, False) else None  # other kinds: torch.load's way\n",
        "    return None\n",
        ["tests/core/test_io.py::test_tensors_stay_on_their_saved_device_where_the_host_has_it"],
    ),
    (
        "restore: a map_location no device here has called a broken file",
        "asc_kd/core/io.py",
        '        if map_location != "cpu" and _readable(path):',
        "        if False:",
        ["tests/core/test_io.py::test_a_place_no_device_here_has_is_not_called_a_broken_file"],
    ),
    (
        "bench teacher: the training step timed at a batch other than the recipe's",
        "asc_kd/benchmarks/teacher.py",
        '    found = recipe_value([path], "data.batch_size")',
        '    found = recipe_value([path], "data.eval_batch_size") or (8, path)',
        [
            "tests/benchmarks/test_benchmarks.py::test_bench_teacher_times_a_training_step_at_the_recipes_batch"
        ],
    ),
    (
        "bench teacher: the eval forward timed on the training batch",
        "asc_kd/benchmarks/teacher.py",
        '            results[f"{name}_{phase}_clips_per_s"] = round(size / median, 2)',
        '            results[f"{name}_{phase}_clips_per_s"] = round(batch_size / median, 2)\n'
        '            results["eval_batch_size"] = batch_size',
        ["tests/benchmarks/test_benchmarks.py::test_bench_teacher_compares_the_same_teacher_both_ways"],
    ),
    (
        "bench train --fit: the plain loop reads another epoch than the fit's",
        "asc_kd/benchmarks/student.py",
        "        loop_data = build_datamodule(given)\n",
        "        loop_data = build_datamodule(given, batch_size=batch_size + 1)\n",
        ["tests/benchmarks/test_benchmarks.py::test_bench_fit_epoch_times_a_real_fit_epoch"],
    ),
    (
        "STFT: the reflected edge repeats the edge sample",
        "asc_kd/models/frontends.py",
        "    padded[..., :pad] = padded[..., pad + 1 : 2 * pad + 1].flip(-1)",
        "    padded[..., :pad] = padded[..., pad : 2 * pad].flip(-1)",
        ["tests/models/test_frontends.py::test_stft_power_of_a_hand_computed_clip"],
    ),
    (
        "STFT: a window shorter than the FFT put at the frame's start",
        "asc_kd/models/frontends.py",
        "        left = (n_fft - window.shape[-1]) // 2\n",
        "        left = 0\n",
        ["tests/models/test_frontends.py::test_stft_power_equals_torch_stft"],
    ),
    (
        "STFT: the whole batch transformed at once, not a cache-sized chunk at a time",
        "asc_kd/models/frontends.py",
        "    rows = max(1, STFT_CHUNK_BYTES // max(row_bytes, 1))",
        "    rows = frames.shape[0]",
        ["tests/models/test_frontends.py::test_stft_power_transforms_a_cache_sized_chunk_of_clips_at_a_time"],
    ),
    (
        "STFT: chunked on every device, not only on a CPU",
        "asc_kd/models/frontends.py",
        '        frames.device.type != "cpu"  # as before',
        "        False  # as before",
        ["tests/models/test_frontends.py::test_stft_power_transforms_a_cache_sized_chunk_of_clips_at_a_time"],
    ),
    (
        "STFT: a trace fixes the number of chunks it saw",
        "asc_kd/models/frontends.py",
        "        or torch.jit.is_tracing()  # a trace",
        "        or False  # a trace",
        [
            "tests/models/test_frontends.py::test_a_trace_or_an_export_transforms_the_whole_batch_so_it_takes_any_batch"
        ],
    ),
    (
        "STFT: torch.compile and torch.export chunk too",
        "asc_kd/models/frontends.py",
        "        or torch.compiler.is_compiling()  # so",
        "        or False  # so",
        [
            "tests/models/test_frontends.py::test_a_trace_or_an_export_transforms_the_whole_batch_so_it_takes_any_batch"
        ],
    ),
    (
        "STFT: a chunk's size counted in frames' elements, not bytes",
        "asc_kd/models/frontends.py",
        "    row_bytes = math.prod(frames.shape[1:]) * frames.element_size()",
        "    row_bytes = math.prod(frames.shape[1:])",
        ["tests/models/test_frontends.py::test_stft_power_transforms_a_cache_sized_chunk_of_clips_at_a_time"],
    ),
    (
        "STFT: no chunk at all when one clip is larger than the chunk's bytes",
        "asc_kd/models/frontends.py",
        "    rows = max(1, STFT_CHUNK_BYTES // max(row_bytes, 1))",
        "    rows = STFT_CHUNK_BYTES // max(row_bytes, 1)",
        ["tests/models/test_frontends.py::test_stft_power_values_do_not_depend_on_the_chunks"],
    ),
    (
        "STFT: the chunks written into one buffer under autograd (out= refuses it)",
        "asc_kd/models/frontends.py",
        "        or (torch.is_grad_enabled() and (frames.requires_grad or window.requires_grad))  # no out=",
        "        or False  # no out=",
        ["tests/models/test_frontends.py::test_stft_power_passes_gradients_as_torch_stft_does"],
    ),
    (
        "STFT: the chunks' power in the input's dtype, not the windowed frames'",
        "asc_kd/models/frontends.py",
        "    dtype = torch.promote_types(frames.dtype, window.dtype)",
        "    dtype = frames.dtype",
        [
            "tests/models/test_frontends.py::test_stft_power_keeps_the_windowed_frames_dtype_and_a_windows_gradient"
        ],
    ),
    (
        "STFT: out= under autograd when only the window takes gradients",
        "asc_kd/models/frontends.py",
        "(frames.requires_grad or window.requires_grad))  # no out=",
        "frames.requires_grad)  # no out=",
        [
            "tests/models/test_frontends.py::test_stft_power_keeps_the_windowed_frames_dtype_and_a_windows_gradient"
        ],
    ),
    (
        "STFT: pre-emphasis left out",
        "asc_kd/models/frontends.py",
        "        torch.add(x[..., 1:], x[..., :-1], alpha=-preemphasis, out=middle)  # one pass",
        "        middle.copy_(x[..., 1:])",
        ["tests/models/test_frontends.py::test_stft_power_of_a_hand_computed_clip"],
    ),
    (
        "restore: a recorded class that is not a task accepted",
        "asc_kd/tasks/restore.py",
        "    if not (isinstance(cls, type) and any(_named(klass) == _TASK for klass in cls.__mro__)):",
        "    if not isinstance(cls, type):",
        [
            "tests/tasks/test_restore.py::test_a_checkpoint_recording_what_this_version_cannot_build_is_refused"
        ],
    ),
    (
        "restore: a keyword argument's error blamed on the file",
        "asc_kd/tasks/restore.py",
        "        if overrides:  # the keyword arguments may be at fault, not the file",
        "        if False:",
        [
            "tests/tasks/test_restore.py::test_a_keyword_argument_the_task_refuses_is_named_not_blamed_on_the_file"
        ],
    ),
    (
        "restore: the task's on_load_checkpoint skipped",
        "asc_kd/tasks/restore.py",
        "    task.on_load_checkpoint(checkpoint)  # as Lightning does before loading: a task's migration\n",
        "",
        [
            "tests/tasks/test_restore.py::test_the_tasks_on_load_checkpoint_sees_the_checkpoint_before_its_weights_load"
        ],
    ),
    (
        "bench teacher: a fixed training batch instead of the recipe's",
        "asc_kd/benchmarks/teacher.py",
        "    batch_size = recipe_batch_size(model) if batch_size is None else batch_size",
        "    batch_size = 8 if batch_size is None else batch_size",
        [
            "tests/benchmarks/test_benchmarks.py::test_bench_teacher_defaults_to_the_recipes_batch_and_the_exports_eval_batch"
        ],
    ),
    (
        "bench teacher: a fixed eval batch instead of the logits export's",
        "asc_kd/benchmarks/teacher.py",
        '    eval_batch_size = LOGITS_DATA_DEFAULTS["eval_batch_size"] if eval_batch_size is None else '
        "eval_batch_size",
        "    eval_batch_size = 64 if eval_batch_size is None else eval_batch_size",
        [
            "tests/benchmarks/test_benchmarks.py::test_bench_teacher_defaults_to_the_recipes_batch_and_the_exports_eval_batch"
        ],
    ),
    (
        "PaSST front-end: pre-emphasis left out",
        "asc_kd/models/frontends.py",
        "            power = stft_power(x, self.n_fft, self.hop_length, self.window, PREEMPHASIS)\n",
        "            power = stft_power(x, self.n_fft, self.hop_length, self.window)\n",
        ["tests/models/test_frontends.py::test_passt_mel_eval_matches_direct_computation"],
    ),
    (
        "compiled CP-ResNet pools through inductor's lowering again",
        "asc_kd/models/cp_resnet.py",
        'x.device.type == "cpu" and torch.compiler.is_compiling():',
        'x.device.type == "cpu" and False:',
        [
            "tests/models/test_models.py::test_cp_resnet_compiled_for_training_pools_with_aten_kernels",
            "tests/models/test_models.py::test_max_pool_compiled_for_training_is_aten_values_and_gradients",
        ],
    ),
    (
        "compiled pool's gradient spread over every tie of a window",
        "asc_kd/models/cp_resnet.py",
        "    return _max_pool2d_backward(grad, x, indices, ctx.kernel), None",
        "    up = grad.repeat_interleave(ctx.kernel[0], 2).repeat_interleave(ctx.kernel[1], 3)\n"
        "    full = torch.nn.functional.pad(up, (0, x.shape[3] - up.shape[3], 0, x.shape[2] - up.shape[2]))\n"
        "    top = torch.nn.functional.pad(_max_pool2d(x, ctx.kernel)[0].repeat_interleave(ctx.kernel[0], 2)"
        ".repeat_interleave(ctx.kernel[1], 3), (0, x.shape[3] - up.shape[3], 0, x.shape[2] - up.shape[2]))\n"
        "    return torch.where(x == top, full, 0), None",
        ["tests/models/test_models.py::test_max_pool_compiled_for_training_is_aten_values_and_gradients"],
    ),
    (
        "a partial report run drops its machine's other rows",
        "asc_kd/benchmarks/report.py",
        "    rows = _rows_by_command(previous) if same_table else {}",
        "    rows = {}",
        [
            "tests/benchmarks/test_benchmarks.py::test_the_report_keeps_a_section_per_machine_and_replaces_only_the_rows_it_ran"
        ],
    ),
    (
        "a report run drops the other machines' sections",
        "asc_kd/benchmarks/report.py",
        "    sections = machine_sections(out.read_text()) if out.is_file() else {}",
        "    sections = {}",
        [
            "tests/benchmarks/test_benchmarks.py::test_the_report_keeps_a_section_per_machine_and_replaces_only_the_rows_it_ran"
        ],
    ),
    (
        "bench train --fit: the references timed once, not next to each epoch",
        "asc_kd/benchmarks/student.py",
        "            self.references.append(EpochTimer.after_epoch())",
        "            self.references.append(\n"
        "                self.references[0] if self.references else EpochTimer.after_epoch()\n"
        "            )",
        ["tests/benchmarks/test_benchmarks.py::test_bench_fit_epoch_times_a_real_fit_epoch"],
    ),
    (
        "bench train --fit: the warm-up epoch counted",
        "asc_kd/benchmarks/student.py",
        "    first = 1 if len(epochs_run) > 1 else 0",
        "    first = 0",
        ["tests/benchmarks/test_benchmarks.py::test_bench_fit_epoch_times_a_real_fit_epoch"],
    ),
    (
        "bench train --fit: an epoch's references only those after it",
        "asc_kd/benchmarks/student.py",
        "(before.bare_step_clips_per_s + after.bare_step_clips_per_s) / 2",
        "after.bare_step_clips_per_s",
        ["tests/benchmarks/test_benchmarks.py::test_bench_fit_epoch_times_a_real_fit_epoch"],
    ),
    (
        "time roll's numpy path shifts the other way",
        "asc_kd/augmentations/waveform.py",
        "            target[row, s:] = source[row, : n - s]\n"
        "            target[row, :s] = source[row, n - s :]",
        "            target[row, : n - s] = source[row, s:]\n"
        "            target[row, n - s :] = source[row, :s]",
        ["tests/augmentations/test_waveform.py"],
    ),
    (
        "the cache read puts each clip in another row",
        "asc_kd/data/cache.py",
        "                block[i] = self.data[rows[i]]",
        "                block[i] = self.data[rows[order[i]]]",
        ["tests/data/test_cache.py"],
    ),
    (
        "a report run keeps rows measured under other versions",
        "asc_kd/benchmarks/report.py",
        "    rows = _rows_by_command(previous) if same_table else {}",
        "    rows = _rows_by_command(previous)",
        [
            "tests/benchmarks/test_benchmarks.py::test_the_report_keeps_a_section_per_machine_and_replaces_only_the_rows_it_ran"
        ],
    ),
    (
        "bench train --fit runs inside another's fit",
        "asc_kd/benchmarks/student.py",
        "    if EpochTimer.after_epoch is not None:  # its references",
        "    if False:  # its references",
        ["tests/benchmarks/test_benchmarks.py::test_bench_fit_epoch_refuses_to_run_inside_another"],
    ),
    (
        "masks broadcast along the other axis",
        "asc_kd/augmentations/spectrogram.py",
        "mask.unsqueeze(-1 if axis == spec.dim() - 2 else -2)",
        "mask.unsqueeze(-2 if axis == spec.dim() - 2 else -1)",
        [
            "tests/augmentations/test_spectrogram.py::test_masks_are_torchaudios_for_a_seed_in_the_inputs_layout"
        ],
    ),
    (
        "mask start drawn over the whole axis",
        "asc_kd/augmentations/spectrogram.py",
        "    start = (torch.rand(examples, **options) * (size - width)).long()",
        "    start = (torch.rand(examples, **options) * size).long()",
        [
            "tests/augmentations/test_spectrogram.py::test_masks_are_torchaudios_for_a_seed_in_the_inputs_layout"
        ],
    ),
    (
        "time masks not capped at their share of the clip",
        "asc_kd/augmentations/spectrogram.py",
        "        mask_param = min(mask_param, int(size * p))",
        "        pass",
        [
            "tests/augmentations/test_spectrogram.py::test_masks_are_torchaudios_for_a_seed_in_the_inputs_layout"
        ],
    ),
    (
        "masks capped at the axis when p is 1",
        "asc_kd/augmentations/spectrogram.py",
        "    if p != 1.0:\n        mask_param = min(mask_param, int(size * p))",
        "    if True:\n        mask_param = min(mask_param, int(size * p))",
        [
            "tests/augmentations/test_spectrogram.py::test_masks_are_torchaudios_for_a_seed_in_the_inputs_layout"
        ],
    ),
    (
        "masks drawn in float32 whatever the batch's dtype",
        "asc_kd/augmentations/spectrogram.py",
        '{"device": spec.device, "dtype": spec.dtype}',
        '{"device": spec.device, "dtype": torch.float32}',
        [
            "tests/augmentations/test_spectrogram.py::test_masks_are_torchaudios_for_a_seed_in_the_inputs_layout"
        ],
    ),
    (
        "masks take a batch without its batch axis",
        "asc_kd/augmentations/spectrogram.py",
        "    if spec.dim() < 3 or axis not in",
        "    if axis not in",
        ["tests/augmentations/test_spectrogram.py::test_masks_refuse_what_torchaudio_refuses"],
    ),
    (
        "masks take a share beyond the axis",
        "asc_kd/augmentations/spectrogram.py",
        "    if not 0.0 <= p <= 1.0:",
        "    if False:",
        ["tests/augmentations/test_spectrogram.py::test_masks_refuse_what_torchaudio_refuses"],
    ),
    (
        "masks come back in the transposed layout",
        "asc_kd/augmentations/spectrogram.py",
        "    return spec.masked_fill(mask.unsqueeze(-1 if axis == spec.dim() - 2 else -2), 0.0)",
        "    return spec.transpose(axis, -1).masked_fill(mask.unsqueeze(-2), 0.0).transpose(axis, -1)",
        [
            "tests/augmentations/test_spectrogram.py::test_masks_are_torchaudios_for_a_seed_in_the_inputs_layout",
            "tests/models/test_frontends.py::test_student_recipe_masks_up_to_47_mel_bins_in_training_only",
        ],
    ),
    (
        "band spans end at their first used bin",
        "asc_kd/models/frontends.py",
        "    end = bins - used.flip(1).byte().argmax(1)",
        "    end = bins - used.byte().argmax(1)",
        ["tests/models/test_frontends.py::test_band_spans_of_empty_filters_give_exact_zeros"],
    ),
    (
        "an empty filter block's span is no bin",
        "asc_kd/models/frontends.py",
        "end.masked_fill(empty, 1)",
        "end.masked_fill(empty, 0)",
        ["tests/models/test_frontends.py::test_band_spans_of_empty_filters_give_exact_zeros"],
    ),
]


def main(only: list[str]) -> int:
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, file, old, new, tests in MUTATIONS:
            if only and not any(o in name for o in only):
                continue
            if not _caught(Path(tmp) / "tree", file, old, new, tests):
                missed.append(name)
            print(f"{'MISSED' if name in missed else 'CAUGHT'}: {name}", flush=True)
    return 1 if missed else 0


def _caught(work: Path, file: str, old: str, new: str, tests: list[str]) -> bool:
    shutil.rmtree(work, ignore_errors=True)

    def ignore(folder, names):
        top = {".venv", ".git", "data", "outputs"} if Path(folder) == SRC else set()
        return [n for n in names if n in top or n == "__pycache__" or n.endswith(".ckpt")]

    shutil.copytree(SRC, work, ignore=ignore)
    path = work / file
    text = path.read_text()
    assert text.count(old) == 1, (file, old)
    path.write_text(text.replace(old, new))
    env = {**os.environ, "PYTHONPATH": str(work), "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "-o", "addopts=--import-mode=importlib"], cwd=work, env=env, capture_output=True
    )
    return done.returncode != 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
