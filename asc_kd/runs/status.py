"""Where a pipeline stands, read from its records alone (no driver needed), and how to stop it.

``asc-kd status OUT`` (or ``asc-kd pipeline --status --out OUT``) prints one row per run: kind,
recipe, seed, state, attempts, job, epoch N/M with the last validation metric, elapsed time and
log; its exit code is 0 when every run is done and no driver is still at work.
``asc-kd pipeline --cancel --out OUT`` stops the driver and every run that still has a live
owner, and records them cancelled.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

from asc_kd.runs.driver import DRIVER, driver_owner, driver_record
from asc_kd.runs.executors import cancel_owner, owner_alive, owners_alive
from asc_kd.runs.record import ENDED_STATES, RECORD, owner_text, read_record, update_record

#: The validation metric shown beside a fit's epoch, the first that its metrics CSV has.
SHOWN_METRICS = ("val/acc", "val/log_loss", "val/loss")
KIND_ORDER = {"teacher": 0, "logits": 1, "student": 2, "int8": 3}


def records(out: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every run record under ``out``, in stage order (teachers, logits, students, int8)."""
    paths = [*Path(out).glob(f"*/*/{RECORD}"), *Path(out).glob("stages/*.json")]
    found = [
        (path, record) for path in paths if (record := read_record(path)) is not None and "key" in record
    ]
    return sorted(found, key=lambda item: (KIND_ORDER.get(item[1]["key"].split(":")[0], 9), item[1]["key"]))


def _progress(folder: Path, record: dict[str, Any]) -> tuple[str, str]:
    """``epoch N/M`` and the last validation metric, from the fit's metrics CSV."""
    files = sorted(folder.glob("csv/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    total = (record.get("config") or {}).get("trainer", {}).get("max_epochs")
    if not files:
        return (f"0/{total}" if total else "-"), "-"
    epoch, metric = -1, "-"
    with open(files[-1], newline="") as handle:
        for row in csv.DictReader(handle):
            trained = any(value and name.startswith("val/") for name, value in row.items() if name)
            if trained and row.get("epoch", "").strip().isdigit():  # a validation ends each epoch
                epoch = max(epoch, int(row["epoch"]))
            for name in SHOWN_METRICS:
                if row.get(name):
                    metric = f"{name}={float(row[name]):.4f}"
                    break
    return (f"{epoch + 1}/{total}" if total else str(epoch + 1)), metric


def _elapsed(record: dict[str, Any]) -> str:
    attempts = record.get("attempts") or []
    starts = [a.get("started") or a.get("submitted") for a in attempts]
    starts = [s for s in starts if s]
    if not starts:
        return "-"
    ended = attempts[-1].get("ended") if record.get("state") in ENDED_STATES else None
    seconds = (datetime.fromisoformat(ended) if ended else datetime.now()) - datetime.fromisoformat(
        min(starts)
    )
    minutes, secs = divmod(int(seconds.total_seconds()), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def rows(out: Path) -> list[dict[str, str]]:
    """One row per run record under ``out``."""
    table = []
    found = records(out)
    working = [r.get("state") not in ENDED_STATES and r.get("state") != "planned" for _, r in found]
    alive = owners_alive([r.get("owner") if w else None for (_, r), w in zip(found, working, strict=True)])
    for (path, record), works, owner_lives in zip(found, working, alive, strict=True):
        kind, _, rest = record["key"].partition(":")
        state = record.get("state", "?")
        if works and owner_lives is False:
            state += " (owner gone)"
        attempts = record.get("attempts") or []
        last = attempts[-1] if attempts else {}
        epoch, metric = _progress(path.parent, record) if path.name == RECORD else ("-", "-")
        table.append(
            {
                "kind": kind,
                "recipe": record.get("name") or rest,
                "seed": "-" if record.get("seed") is None else str(record["seed"]),
                "state": state,
                "attempt": str(len([a for a in attempts if a.get("started")])),
                "job": str(last.get("job_id") or last.get("pid") or "-"),
                "epoch": epoch,
                "metric": metric,
                "elapsed": _elapsed(record),
                "log": str(last.get("log") or (record.get("job") or {}).get("logs", ["-"])[-1]),
            }
        )
    return table


def format_rows(table: list[dict[str, str]]) -> str:
    if not table:
        return ""
    columns = list(table[0])
    widths = {c: max(len(c), *(len(r[c]) for r in table)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in table]
    return "\n".join(lines)


def status(out: Path) -> tuple[str, int]:
    """The driver's line and the runs' table, as ``asc-kd status`` prints them, and its exit
    code: 0 when every run is done and no driver is still at work (it writes the tables last),
    else 1."""
    out = Path(out)
    driver = read_record(driver_record(out))
    table = rows(out)
    if driver is None and not table:
        return f"no pipeline runs recorded in {out}", 1
    lines = []
    if driver is not None:
        who = f"slurm job {driver['job_id']}" if driver.get("job_id") else f"pid {driver.get('pid')}"
        reason = f": {driver['reason']}" if driver.get("reason") else ""
        lines.append(f"driver: {driver.get('state')} ({who}){reason}; log {driver.get('log') or '-'}")
    lines.append(format_rows(table))
    done = sum(r["state"] == "done" for r in table)
    lines.append(f"{done} of {len(table)} run(s) done")
    driving = driver is not None and driver.get("state") in ("running", "submitted")  # tables to come
    return "\n".join(lines), 0 if table and done == len(table) and not driving else 1


def cancel(out: Path) -> list[str]:
    """Stop the driver (so that it submits nothing more), then every run with a live owner;
    record each cancelled. Returns what was cancelled, a line each, and the count."""
    out = Path(out)
    said = []
    driver_path = driver_record(out)
    driver = read_record(driver_path)
    if driver is not None and driver.get("state") in ("running", "submitted"):
        owner = driver_owner(driver)
        if owner_alive(owner):  # a detached driver leaves its jobs on SIGTERM: they are cancelled below
            cancel_owner(owner)
            said.append(f"cancelled the driver ({DRIVER}: {owner_text(owner)})")
        update_record(driver_path, lambda r: r.update(state="cancelled", reason="asc-kd pipeline --cancel"))
    cancelled = 0
    for path, record in records(out):
        if record.get("state") in ENDED_STATES or owner_alive(record.get("owner")) is False:
            continue
        cancel_owner(record["owner"])
        update_record(
            path, lambda r: r.update(state="cancelled", reason="cancelled with asc-kd pipeline --cancel")
        )
        cancelled += 1
        said.append(f"cancelled {record['key']}")
    said.append(f"{cancelled} run(s) cancelled in {out}")
    return said
