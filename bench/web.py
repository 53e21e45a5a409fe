"""Over-read web application benchmark: what a physician waits for, served by the real
server (uvicorn, as `ecg-gateway serve` runs it) and timed by a client on loopback.

  * the report view of a 10 s 12-lead ECG (PTB-XL 00001_hr through the real pipeline):
    the HTML page, its SVG 12-lead page (drawn afresh, then from the cache) and the
    stylesheet; time per request and bytes as sent (gzip);
  * the worklist with 10,000 open reports in the store (the worklist index filled with
    synthetic, non-patient rows beside the real report: names "Bench^Patient0001");
    every match counted (by the store), the first 200 rows shown; also filtered to
    stat;
  * baselines in the same server and run: the stylesheet (a static file) and the login
    page (a template with no data), so a slow machine shows as slow baselines too.

Then, in-process, where the worklist's time goes: the store query for 10,000 rows, the
template for the rows shown.

    .venv/bin/python bench/web.py [--reports 10000] [--rounds 30]

Goal (issue 22): the worklist with 10,000 open reports in under 200 ms.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.store import NewJob
from gateway.store.report_records import ReportHead
from tests.browser_support import served
from tests.conftest import SHARED_DATA
from tests.overread_support import Site
from tests.web_support import PASSWORDS, csrf_token, web_context

SITES = ("Cardiology", "Emergency", "ICU", "Ward 4", "Outpatients")


def fill_worklist(site: Site, count: int, report_json: str) -> None:
    """`count` open reports in the store: a job each and its worklist row (version 1)."""
    now = time.time()
    for index in range(count):
        enqueued = site.store.add_job(
            NewJob(
                sop_instance_uid=f"2.25.{10**12 + index}",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.9.1.1",
                content_sha256=f"{index:064x}",
                spool_path=f"bench/{index}.dcm",
                kind="ecg-waveform",
                calling_ae="BENCH",
                called_ae="ECGGW",
                peer="127.0.0.1",
            )
        )
        critical = index % 37 == 0
        site.store.index_report(
            enqueued.job_id,
            ReportHead(
                report_json=report_json,
                status="preliminary",
                critical_texts=("QTc 512 ms (>= 500 ms)",) if critical else (),
                priority="stat" if index % 10 == 0 else "asap" if index % 5 == 0 else "routine",
                site=SITES[index % len(SITES)],
                station=f"CART{index % 12:02d}",
                received_at=now - (index * 26.0),  # three days of ECGs
                acquired_at=now - (index * 26.0) - 60,
                patient_name=f"Bench^Patient{index:05d}",
                patient_id=f"B{index:07d}",
                summary="Sinus rhythm. Normal ECG.",
            ),
            now,
        )


def timed(client: httpx.Client, path: str, rounds: int) -> dict[str, float]:
    """Median and 95th percentile ms, and bytes on the wire / decoded, of GET `path`."""
    client.get(path)  # warm: connection, caches, template compiled
    times, wire, body = [], 0, 0
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        wire = int(response.headers.get("content-length", len(response.content)))
        body = len(response.content)
    times.sort()
    return {
        "median": statistics.median(times),
        "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "wire": wire,
        "body": body,
    }


def row(name: str, result: dict[str, float]) -> str:
    return (
        f"| {name} | {result['median']:.1f} | {result['p95']:.1f} | "
        f"{result['wire'] / 1024:.1f} | {result['body'] / 1024:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Site(Path(tmp) / "data", None)
        try:
            job_id = site.receive(SHARED_DATA)
            report_json = site.store.latest_report_version(job_id).report_json
            started = time.perf_counter()
            fill_worklist(site, args.reports - 1, report_json)
            fill_s = time.perf_counter() - started
            context = web_context(Path(tmp), site.service, audit=site.audit)
            results = run(context, job_id, args.rounds)
            breakdown = in_process(site, context)
        finally:
            site.close()
    print(
        f"# bench/web.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(
        f"# {args.reports} open reports in the store (filled in {fill_s:.0f} s), "
        f"{args.rounds} rounds, client on loopback with keep-alive, gzip accepted\n"
    )
    print("| request | median ms | p95 ms | KiB sent | KiB page |")
    print("|---|---:|---:|---:|---:|")
    for name, result in results:
        print(row(name, result))
    weight = sum(r["wire"] for n, r in results if n.startswith("report view"))
    print(f"\nReport view page weight (HTML + SVG + CSS, as sent): {weight / 1024:.1f} KiB")
    print(
        "\nWorklist in-process (no HTTP): "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in breakdown)
    )
    return 0


def run(context, job_id: int, rounds: int) -> list[tuple[str, dict[str, float]]]:
    with served(context) as base, httpx.Client(base_url=base) as client:
        baseline_css = timed(client, "/static/style.css", rounds)
        baseline_login = timed(client, "/login", rounds)
        token = csrf_token(client.get("/login").text)
        signed = client.post(
            "/login",
            data={"csrf_token": token, "user_id": "drsmith", "password": PASSWORDS["drsmith"]},
        )
        assert signed.status_code == 303, signed.text
        page = timed(client, f"/reports/{job_id}", rounds)
        cold = []
        for _ in range(rounds):
            context.ecgs._svgs.clear()
            cold.append(timed(client, f"/reports/{job_id}/ecg.svg", 1))
        svg_cold = {
            "median": statistics.median(r["median"] for r in cold),
            "p95": sorted(r["median"] for r in cold)[int(0.95 * (len(cold) - 1))],
            "wire": cold[0]["wire"],
            "body": cold[0]["body"],
        }
        svg_warm = timed(client, f"/reports/{job_id}/ecg.svg", rounds)
        worklist = timed(client, "/worklist", rounds)
        stat = timed(client, "/worklist?priority=stat", rounds)
    return [
        ("baseline: static stylesheet", baseline_css),
        ("baseline: login page (template, no data)", baseline_login),
        ("report view: HTML page", page),
        ("report view: SVG 12-lead, drawn", svg_cold),
        ("report view: SVG 12-lead, cached", svg_warm),
        ("report view: stylesheet", baseline_css),
        ("worklist, 10,000 open (200 rows shown)", worklist),
        ("worklist, stat only", stat),
    ]


def in_process(site: Site, context) -> list[tuple[str, float]]:
    from gateway.web.context import TEMPLATES

    def best(action, repeat: int = 5) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            action()
            times.append((time.perf_counter() - start) * 1000)
        return min(times)

    entries = site.service.worklist(limit=200)
    template = TEMPLATES.get_template("worklist.html")
    values = {
        "entries": entries,
        "ages_of": ["1 h 5 min"] * len(entries),
        "sites": [],
        "counts": {**site.store.worklist_counts(), "shown": len(entries)},
        "filters": {"site": "", "priority": "", "age": "", "final": False},
        "ages": (),
        "flash": [],
        "user": None,
        "csrf_token": "",
        "csrf_field": "csrf_token",
    }
    return [
        ("store: first 200 rows", best(lambda: site.service.worklist(limit=200))),
        ("store: counts of all", best(site.store.worklist_counts)),
        ("template: 200 rows", best(lambda: template.render(values))),
    ]


if __name__ == "__main__":
    sys.exit(main())
