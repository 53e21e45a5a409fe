"""The EHR side of the compose setup: an HL7 v2 listener over MLLP (python-hl7's asyncio
server, an implementation independent of the gateway's sender).

Each message is written to OUT_DIR as <MSH-10>.hl7 and answered with an ACK (MSA AA)
once it is on disk; a message that does not parse gets MSA AE. Usage:
    python mllp_listener.py [--host 0.0.0.0] [--port 2575] [--out /var/lib/ehr/hl7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import hl7
from hl7.mllp import start_hl7_server


def acknowledge(text: str, out_dir: Path) -> str:
    """Keep the message durably, then answer AA; AE (with no echo of the content) if it is not HL7."""
    try:
        message = hl7.parse(text)
        control_id = str(message.segment("MSH")[10]) or "unknown"
    except (hl7.ParseException, IndexError, KeyError, ValueError):  # not HL7 v2
        return _ack_text("AE", "")
    path = out_dir / f"{_safe(control_id)}.hl7"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return str(message.create_ack("AA"))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]


def _ack_text(code: str, control_id: str) -> str:
    return f"MSH|^~\\&|EHR|EHR|||||ACK|{control_id}|P|2.5.1\rMSA|{code}|{control_id}"


async def serve(host: str, port: int, out_dir: Path) -> None:
    async def handle(reader, writer) -> None:
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                writer.writemessage(hl7.parse(acknowledge(str(message), out_dir)))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    async with await start_hl7_server(handle, host=host, port=port) as server:
        print(f"listening on {host}:{port}, messages to {out_dir}", flush=True)
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=2575)
    parser.add_argument("--out", type=Path, default=Path("/var/lib/ehr/hl7"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.host, args.port, args.out))


if __name__ == "__main__":
    main()
