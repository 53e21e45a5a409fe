"""`ecg-gateway jobs`: what the store says about received objects, as text for people.

Lists show UIDs, states and errors only (no patient data); `show` adds the report's
impression, which carries no patient data by the report's contract.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from gateway.cli.common import add_config_options, audit_action, on_existing_store
from gateway.config import GatewayConfig
from gateway.metrics import REJECTED_PREFIX, read_metrics
from gateway.store import Job, Store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list, show or retry processing jobs")
    jobs = p.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    listing = jobs.add_parser("list", help="recent jobs, newest first (no patient data)")
    listing.add_argument("--state", choices=("queued", "leased", "done", "failed"))
    listing.add_argument("--limit", type=int, default=50)
    show = jobs.add_parser("show", help="every job received under a SOP Instance UID")
    show.add_argument("uid")
    retry = jobs.add_parser("retry", help="requeue the failed jobs of a SOP Instance UID")
    retry.add_argument("uid")
    for action in (listing, show, retry):
        add_config_options(action)
    p.set_defaults(func=run)


@on_existing_store
def run(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    if args.jobs_command == "list":
        print(format_job_list(store, config.metrics_path, args.state, args.limit))
        return 0
    if args.jobs_command == "show":
        text = format_job_details(store, args.uid)
        print(text or f"no job for SOP Instance UID {args.uid}")
        return 0 if text else 1
    count = retry_jobs(store, args.uid)
    audit_action(config, f"jobs retry {args.uid}: {count} requeued")
    print(f"requeued {count} failed job(s) for {args.uid}")
    return 0 if count else 1


def format_job_list(store: Store, metrics_path: Path, state: str | None, limit: int) -> str:
    jobs = store.list_jobs(state=state, limit=limit)  # type: ignore[arg-type]
    lines = [f"{'ID':>6}  {'STATE':<7} {'KIND':<17} {'TRY':>3}  {'RECEIVED':<19}  SOP INSTANCE UID"]
    for job in jobs:
        lines.append(
            f"{job.id:>6}  {job.state:<7} {job.kind:<17} {job.attempts:>3}  "
            f"{_time(job.created_at)}  {job.sop_instance_uid}"
            + (" (correction)" if job.is_correction else "")
        )
        if job.error:
            lines.append(f"{'':>8}error: {_one_line(job.error)}")
    counts = store.count_jobs()
    lines.append("")
    lines.append("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    rejections = {
        k.removeprefix(REJECTED_PREFIX): v
        for k, v in read_metrics(metrics_path).items()
        if k.startswith(REJECTED_PREFIX)
    }
    if rejections:
        lines.append(
            "rejected (last server run): "
            + ", ".join(f"{k} {v}" for k, v in sorted(rejections.items()))
        )
    return "\n".join(lines)


def format_job_details(store: Store, sop_instance_uid: str) -> str | None:
    """Every job (version) received under this UID, or None when there is none."""
    jobs = store.jobs_for_uid(sop_instance_uid)
    if not jobs:
        return None
    return "\n\n".join(_details(job) for job in jobs)


def retry_jobs(store: Store, sop_instance_uid: str) -> int:
    return store.retry_failed_jobs(sop_instance_uid)


def _details(job: Job) -> str:
    lines = [
        f"job {job.id}: {job.state}",
        f"  SOP Instance UID  {job.sop_instance_uid}",
        f"  SOP Class UID     {job.sop_class_uid}",
        f"  kind              {job.kind}",
        f"  priority          {job.priority} (its order's; leased by receipt less its head start)",
        f"  content sha256    {job.content_sha256}",
        f"  from              {job.calling_ae or '-'} -> {job.called_ae or '-'} ({job.peer or '-'})",
        f"  source            {job.source or '-'}",
        f"  received          {_time(job.created_at)}",
        f"  updated           {_time(job.updated_at)}",
        f"  attempts          {job.attempts}",
        f"  correction        {'yes' if job.is_correction else 'no'}",
        f"  spool file        {job.spool_path}",
    ]
    if job.error:
        lines.append(f"  error             {_one_line(job.error)}")
    if job.report_dir:
        lines.append(f"  report            {job.report_dir}")
        impression = _impression(Path(job.report_dir))
        if impression:
            lines.append(f"  impression        {impression}")
    return "\n".join(lines)


def _impression(report_dir: Path) -> str | None:
    try:
        return json.loads((report_dir / "report.json").read_text()).get("impression") or None
    except (OSError, ValueError):
        return None


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
