"""Vendor XML read safely, once, and told apart by its root element.

These files arrive from the network and from shared folders, so parsing goes through
defusedxml (entity expansion and external entities are refused) and the file size is
checked before anything is read into memory.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse

from model.errors import EcgDecodeError

# A 10 s 12-lead export is 50-600 KB; a 24 h aECG at 500 Hz in text digits is ~1 GB and
# is not a resting ECG. Anything larger is refused before parsing.
MAX_XML_BYTES = 64 * 1024 * 1024

MUSE = "RestingECG"
PHILIPS = "restingecgdata"
AECG = "AnnotatedECG"
FORMAT_NAMES = {MUSE: "GE MUSE XML", PHILIPS: "Philips Sierra XML", AECG: "HL7 aECG"}


def local_name(tag: str) -> str:
    """'{urn:hl7-org:v3}AnnotatedECG' -> 'AnnotatedECG'."""
    return tag.rpartition("}")[2]


def parse_xml(path: Path) -> Element:
    """The document's root element; EcgDecodeError for unsafe, oversized or malformed XML."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise EcgDecodeError(path, f"cannot read file ({type(exc).__name__})") from None
    if size > MAX_XML_BYTES:
        raise EcgDecodeError(
            path, f"XML file of {size} bytes exceeds the {MAX_XML_BYTES}-byte limit for one ECG"
        )
    try:
        return parse(path).getroot()
    except DefusedXmlException as exc:
        raise EcgDecodeError(path, f"XML refused for safety ({type(exc).__name__})") from None
    except ParseError as exc:
        raise EcgDecodeError(path, f"malformed XML ({exc})") from None
    except (ValueError, LookupError) as exc:  # expat: an encoding it cannot read
        raise EcgDecodeError(path, f"malformed XML (encoding: {exc})") from None
    except OSError as exc:
        raise EcgDecodeError(path, f"cannot read file ({type(exc).__name__})") from None


def xml_format(path: Path, root: Element) -> str:
    """MUSE, PHILIPS or AECG; EcgDecodeError naming the root element otherwise."""
    name = local_name(root.tag)
    if name not in FORMAT_NAMES:
        raise EcgDecodeError(
            path,
            f"unsupported XML document (root element <{root.tag}>); supported are "
            + ", ".join(f"{label} <{tag}>" for tag, label in FORMAT_NAMES.items()),
        )
    return name


def find(element: Element | None, steps: str, namespace: str) -> Element | None:
    """element.find of 'a/b/c' with every step in `namespace` ('{urn:...}'); None-safe."""
    if element is None:
        return None
    return element.find("/".join(namespace + step for step in steps.split("/")))


def findall(element: Element, steps: str, namespace: str) -> list[Element]:
    return element.findall("/".join(namespace + step for step in steps.split("/")))


def xml_number(text: str | None) -> float | None:
    """A finite number from element text or an attribute; None when absent or not one."""
    try:
        value = float(text.strip()) if text and text.strip() else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
