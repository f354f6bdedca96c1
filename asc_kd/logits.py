"""``python -m asc_kd.logits``: ensemble teacher logits for distillation, and Table 1.

    python -m asc_kd.logits TEACHER.ckpt [TEACHER.ckpt ...] --root DATA \\
        --out outputs/teachers/ensemble_train.npz --table outputs/teachers/table1

Runs every teacher checkpoint over a split (train by default; no augmentation), averages the
logits and writes them keyed by filename with their provenance (teachers, split, dataset
fingerprint): ``TAU22DataModule(teacher_logits=...)`` refuses a file made for other clips.
Then evaluates each teacher and the ensemble on the development-test split and writes Table 1
(accuracy, log loss, per device group) as markdown and CSV.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from asc_kd import __version__
from asc_kd.checkpoints import load_task
from asc_kd.data.cache import fingerprint_files
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.logits import save_logits
from asc_kd.data.tau22 import SCENES
from asc_kd.metrics import SceneMetrics
from asc_kd.tables import to_markdown, write_table

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, desc: str = ""
) -> torch.Tensor:
    """Logits of ``model`` for every clip of the loader's dataset, in dataset order.

    Under ``torch.distributed`` (e.g. ``torchrun``) each rank scores every world-size-th clip
    and the shards are summed into place, so every rank returns the full, ordered tensor with
    each clip computed exactly once (no padding duplicates, none missing).
    """
    rank, world = _rank_and_world()
    n = len(loader.dataset)
    if world > 1:
        shard = Subset(loader.dataset, list(range(rank, n, world)))
        loader = DataLoader(
            shard, batch_size=loader.batch_size, num_workers=loader.num_workers, collate_fn=loader.collate_fn
        )
    model.eval().to(device)
    out = torch.zeros(n, len(SCENES))
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, disable=rank > 0):
        out[batch["index"]] = model(batch["waveform"].to(device)).float().cpu()
    if world > 1:
        reduced = out.to(device)
        torch.distributed.all_reduce(reduced)
        out = reduced.cpu()
    return out


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def scene_metrics(logits: torch.Tensor, loader: DataLoader, confusion: bool = False) -> dict[str, Any]:
    """``SceneMetrics`` of precomputed logits for the loader's (labelled) dataset.

    With ``confusion`` the (true, predicted) count matrix is added as a nested list.
    """
    labels = loader.dataset.labels
    metric = SceneMetrics()
    metric.update(logits, labels["target"], labels["device"])
    out: dict[str, Any] = {k: float(v) for k, v in metric.compute().items()}
    if confusion:
        out["confusion"] = metric.confusion().tolist()
    return out


TABLE_COLUMNS = ["acc", "macro_acc", "log_loss", "acc_real", "acc_seen", "acc_unseen"]


def export_logits(
    checkpoints: list[str],
    datamodule: TAU22DataModule,
    out: str | Path,
    split: str = "train",
    table: str | Path | None = None,
    device: str = "auto",
    names: list[str] | None = None,
) -> pd.DataFrame | None:
    """Average the teachers' logits over ``split``, save them, and return Table 1 (or None).

    ``names`` label the teachers in Table 1 (default: model name and checkpoint file).
    """
    target = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
    )
    rank, world = _rank_and_world()
    if rank == 0:  # one process builds the cache; the others wait and read it
        datamodule.prepare_data()
    if world > 1:
        torch.distributed.barrier()
    datamodule.setup("predict")
    export_loader = datamodule.loader(split)
    test_loader = datamodule.loader("test")
    teachers, ensemble, ensemble_test, rows = [], 0.0, 0.0, []
    for index, path in enumerate(checkpoints):
        task = load_task(path)
        name = names[index] if names else f"{task.hparams.model} ({Path(path).name})"
        logits = predict_logits(task, export_loader, target, desc=f"{name} on {split}")
        ensemble = ensemble + logits / len(checkpoints)
        teachers.append({"checkpoint": str(path), "model": task.hparams.model})
        if table is not None:
            test_logits = logits if split == "test" else predict_logits(task, test_loader, target, name)
            ensemble_test = ensemble_test + test_logits / len(checkpoints)
            rows.append({"teacher": name, **scene_metrics(test_logits, test_loader)})
    filenames = list(export_loader.dataset.frame["filename"])
    metadata = {
        "teachers": teachers,
        "split": split,
        "split_file": datamodule.hparams.train_split_file if split == "train" else None,
        "dataset_fingerprint": fingerprint_files(datamodule.root, filenames),
        "classes": list(SCENES),
        "asc_kd_version": __version__,
    }
    writer = _rank_and_world()[0] == 0  # every rank holds the gathered logits; one writes
    if writer:
        save_logits(out, filenames, ensemble, metadata)
        log.info(
            "wrote ensemble logits of %d teachers for %d clips to %s", len(checkpoints), len(filenames), out
        )
    if table is None:
        return None
    rows.append({"teacher": f"ensemble of {len(checkpoints)}", **scene_metrics(ensemble_test, test_loader)})
    frame = pd.DataFrame(rows)[["teacher", *TABLE_COLUMNS]]
    if writer:
        write_table(frame, table, title="Table 1: teachers on the development-test split")
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_kd.logits", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="teacher checkpoints (any asc_kd task)")
    parser.add_argument("--root", required=True, help="dataset root (TAU22 layout)")
    parser.add_argument("--cache-dir", default=None, help="audio cache folder")
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--train-split-file", default=None, help="e.g. a DCASE24 split25.csv")
    parser.add_argument("--out", default="outputs/teachers/ensemble_train.npz")
    parser.add_argument("--table", default="outputs/teachers/table1", help="Table 1 stem ('' to skip)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = args.device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: one shard per rank
        cuda = torch.cuda.is_available() and device != "cpu"
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
        if cuda:
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
    datamodule = TAU22DataModule(
        root=args.root,
        cache_dir=args.cache_dir,
        train_split_file=args.train_split_file,
        batch_size=args.batch_size,
        eval_batch_size=args.batch_size,
        num_workers=args.num_workers,
    )
    frame = export_logits(args.checkpoints, datamodule, args.out, args.split, args.table or None, device)
    if frame is not None and _rank_and_world()[0] == 0:
        print(to_markdown(frame))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
