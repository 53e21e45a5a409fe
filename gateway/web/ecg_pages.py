"""The report's ECG for the web pages: the 12-lead page as SVG (model/render/svg.py) from
the package's samples, the latest version of a report without opening it (so drawing
the page or checking a submitted form is not counted as the physician opening it), and
the prior ECG's job when the comparison names one this store holds.

SVGs are kept in a small LRU by job: the samples of a job never change, and a physician
going back and forth between the worklist and a report redraws nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from gateway.delivery import DeliveryError, load_package
from gateway.overread import NotFound
from gateway.processing.package import ReportPackage
from gateway.store import Store
from model.ecg import Ecg
from model.render.svg import render_svg
from model.report import Report

_CACHED = 64


class EcgPages:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._svgs: OrderedDict[int, str | None] = OrderedDict()
        self._lock = threading.Lock()

    def latest_report(self, job_id: int) -> Report:
        version = self.store.latest_report_version(job_id)
        if version is None:
            raise NotFound(f"no finished report {job_id}")
        return Report.model_validate_json(version.report_json)

    def svg(self, job_id: int) -> str | None:
        """The job's 12-lead page as SVG; None without samples (a PDF or image source, or
        files removed by retention)."""
        with self._lock:
            if job_id in self._svgs:
                self._svgs.move_to_end(job_id)
                return self._svgs[job_id]
        ecg = self._waveform(job_id)
        svg = render_svg(ecg, title=f"12-lead ECG, report {job_id}") if ecg is not None else None
        with self._lock:
            self._svgs[job_id] = svg
            while len(self._svgs) > _CACHED:
                self._svgs.popitem(last=False)
        return svg

    def prior_job(self, report: Report) -> int | None:
        """The job of the prior ECG the comparison was made with, when this store has
        its samples; None otherwise (the comparison table still shows both values)."""
        if report.comparison is None:
            return None
        jobs = self.store.jobs_for_uid(report.comparison.prior_sop_instance_uid)
        done = [job for job in jobs if job.state == "done" and job.report_dir]
        return done[-1].id if done else None

    def page_png(self, job_id: int) -> bytes | None:
        """The page as a PNG, for a report made from a picture or PDF (no samples to
        draw): the received page (its first frame or page)."""
        package = self._package(job_id)
        return package.png if package is not None else None

    def _waveform(self, job_id: int) -> Ecg | None:
        package = self._package(job_id)
        return package.waveform if package is not None else None

    def _package(self, job_id: int) -> ReportPackage | None:
        job = self.store.get_job(job_id)
        directory = self.store.report_files_of(job) if job is not None else None
        if directory is None:
            return None
        try:
            return load_package(directory)
        except DeliveryError:
            return None
