"""The container image, built and run for real: deploy/Dockerfile from Debian's packages.

No container registry is reachable here, so the base image is made from Debian itself:
debootstrap (minbase, bookworm) into a folder, imported into podman. Then:

1. `podman build` of deploy/Dockerfile on that base (torch's CPU wheel from a local
   folder when PyTorch's index is out of reach: --torch-wheel, default $PIP_FIND_LINKS);
2. `ecg-gateway demo` inside the image (the sample ECGs from ../shared/data mounted
   read-only), timed against the same demo on this host in the same run (the baseline);
3. `ecg-gateway serve` as the image's default command: the HEALTHCHECK command answered,
   the user it runs as, one ECG sent from this host by dcmtk storescu and its report in
   the data volume, and `podman stop` (SIGTERM: drain) ending it with exit code 0.

    .venv/bin/python bench/container_image.py [--keep-base] [--runtime runc]

Needs root, debootstrap, podman and network access to Debian's and PyPI's mirrors; takes
about 10 minutes. Where podman's default OCI runtime cannot set resource limits (as in
this sandbox), --runtime runc and an empty default_ulimits are used; that is a property of
the machine, not of the image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
BASE_TAG = "localhost/ecg-gateway-base:bookworm"
IMAGE_TAG = "localhost/ecg-gateway:bench"
WORK = REPO / "bench" / "out" / "container"


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the bench with its output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:4])}...: exit {result.returncode}\n{result.stderr[-3000:]}")
    return result


def timed(command: list[str], **kwargs: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    result = run(command, **kwargs)
    return time.monotonic() - started, result


class Podman:
    """podman with this machine's runtime settings."""

    def __init__(self, runtime: str | None) -> None:
        conf = WORK / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.base = ["podman"] + (["--runtime", runtime] if runtime else [])

    def __call__(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run([*self.base, *args], env=self.env, **kwargs)

    def succeeds(self, *args: str) -> bool:
        """Whether the command exits 0 (a question, not a step that must work)."""
        command = [*self.base, *args]
        return (
            subprocess.run(command, check=False, env=self.env, capture_output=True).returncode == 0
        )

    def timed(self, *args: str, **kwargs: object) -> tuple[float, subprocess.CompletedProcess[str]]:
        return timed([*self.base, *args], env=self.env, **kwargs)


def build_base(podman: Podman, keep: bool) -> float:
    """debootstrap a minimal bookworm and import it; seconds taken (0 when kept)."""
    rootfs = WORK / "rootfs"
    if keep and podman.succeeds("image", "exists", BASE_TAG):
        return 0.0
    shutil.rmtree(rootfs, ignore_errors=True)
    started = time.monotonic()
    run(
        [
            "debootstrap",
            "--variant=minbase",
            "bookworm",
            str(rootfs),
            "http://deb.debian.org/debian",
        ]
    )
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    podman("import", "-", BASE_TAG, stdin=tar.stdout)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    return time.monotonic() - started


def build_context(torch_wheel: Path | None) -> Path:
    """The repository's tracked files (as a clean clone has them) plus the torch wheel."""
    context = WORK / "context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    files = run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, context / name)
    if torch_wheel is not None:
        shutil.copy2(torch_wheel, context / "deploy" / "wheels" / torch_wheel.name)
    return context


def build_image(podman: Podman, context: Path, local_torch: bool) -> float:
    args = ["build", "--format", "docker", "--network", "host", "-f", "deploy/Dockerfile"]
    args += ["--build-arg", f"BASE_IMAGE={BASE_TAG}", "-t", IMAGE_TAG]
    if local_torch:
        args += ["--build-arg", "TORCH_INDEX="]
    ca = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    if ca.exists():  # this machine's proxy inspects TLS: its CA bundle for pip in the build
        args += [
            "--build-arg",
            "PIP_CERT=/etc/ssl/host-ca.crt",
            "-v",
            f"{ca}:/etc/ssl/host-ca.crt:ro",
        ]
    seconds, _ = podman.timed(*args, ".", cwd=context)
    return seconds


def demo_in_image(podman: Podman) -> float:
    mounts = ["-v", f"{DATA}:/data:ro", "-e", "ECG_GATEWAY_DATA=/data"] if DATA.is_dir() else []
    seconds, result = podman.timed(
        "run",
        "--rm",
        "--network",
        "host",
        *mounts,
        IMAGE_TAG,
        "demo",
        "--out",
        "/var/lib/ecg-gateway/demo",
    )
    if "Impression:" not in result.stdout:
        sys.exit(f"the demo in the image printed no report:\n{result.stdout[-2000:]}")
    return seconds


def demo_on_host() -> float:
    out = WORK / "host-demo"
    seconds, result = timed(
        [str(Path(sys.executable).parent / "ecg-gateway"), "demo", "--out", str(out)], cwd=REPO
    )
    if "Impression:" not in result.stdout:
        sys.exit(f"the demo on this host printed no report:\n{result.stdout[-2000:]}")
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_in_image(podman: Podman) -> dict[str, object]:
    """The default command: healthy, unprivileged, receives an ECG, drains on SIGTERM."""
    port, admin = free_port(), free_port()
    name = f"ecg-gateway-bench-{os.getpid()}"
    config = WORK / "gateway.yaml"  # the image's own, on free ports (the host's network)
    shipped = (REPO / "deploy" / "container" / "gateway.yaml").read_text()
    config.write_text(f"{shipped}\nadmin:\n  port: {admin}\n")
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "-e",
        f"ECG_GATEWAY_ADMIN_PORT={admin}",
        "-v",
        f"{config}:/etc/ecg-gateway/gateway.yaml:ro",
        IMAGE_TAG,
        "serve",
        "--port",
        str(port),
    )
    facts: dict[str, object] = {}
    try:
        started = time.monotonic()
        while not podman.succeeds("healthcheck", "run", name):
            if time.monotonic() - started > 120:
                sys.exit("the image's HEALTHCHECK did not pass within 120 s")
            time.sleep(1)
        facts["healthy after s"] = round(time.monotonic() - started, 1)
        facts["runs as uid"] = podman("exec", name, "id", "-u").stdout.strip()
        sample = next(
            (REPO / "bench" / "out" / "container" / "host-demo" / "samples").glob("*.dcm")
        )
        run(["storescu", "-aec", "ECGGW", "127.0.0.1", str(port), str(sample)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listing = podman("exec", name, "ls", "/var/lib/ecg-gateway/outbox").stdout
            if ".pdf" in listing:
                break
            time.sleep(1)
        facts["report in the volume"] = ".pdf" in listing
        stop_s, _ = podman.timed("stop", "-t", "60", name)
        facts["SIGTERM to exit s"] = round(stop_s, 1)
        facts["exit code"] = podman(
            "inspect", name, "--format", "{{.State.ExitCode}}"
        ).stdout.strip()
    finally:
        podman.succeeds("rm", "-f", name)
    return facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-base", action="store_true", help="reuse an imported base image")
    parser.add_argument("--runtime", default="runc", help="OCI runtime for podman ('' = default)")
    wheels = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")
    found = sorted(Path(wheels).glob("torch-2.13.0+cpu-*.whl")) if Path(wheels).is_dir() else []
    parser.add_argument("--torch-wheel", type=Path, default=found[0] if found else None)
    args = parser.parse_args()
    for tool in ("debootstrap", "podman", "storescu"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install debootstrap podman dcmtk)")
    WORK.mkdir(parents=True, exist_ok=True)
    podman = Podman(args.runtime or None)
    base_s = build_base(podman, args.keep_base)
    build_s = build_image(podman, build_context(args.torch_wheel), args.torch_wheel is not None)
    inspect = json.loads(podman("image", "inspect", IMAGE_TAG).stdout)[0]
    host_s = demo_on_host()
    image_s = demo_in_image(podman)
    facts = serve_in_image(podman)
    print(f"\n{date.today()}, {cpu_name()}, {os.cpu_count()} cores, podman, base from debootstrap")
    print("\n| step | result |\n|---|---|")
    print(f"| debootstrap + import of the base | {base_s:.0f} s{' (kept)' if not base_s else ''} |")
    print(f"| podman build deploy/Dockerfile | {build_s:.0f} s |")
    print(f"| image size | {inspect['Size'] / 1e9:.2f} GB |")
    print(f"| `ecg-gateway demo` on this host (baseline) | {host_s:.1f} s |")
    print(f"| `ecg-gateway demo` inside the image | {image_s:.1f} s |")
    for key, value in facts.items():
        print(f"| serve: {key} | {value} |")
    ok = facts["report in the volume"] is True and facts["exit code"] == "0"
    ok = ok and facts["runs as uid"] == "10001"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
