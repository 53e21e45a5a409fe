"""SCP-ECG patient and acquisition data (section 1), global measurements (section 7) and
interpretive statements (sections 8 and 11) as EcgMetadata fields."""

from __future__ import annotations

import struct
from datetime import date, datetime, time

from model.decode.acquisition import describe_filters
from model.decode.demographics import age_string

# Section 1 tags (EN 1064 5.5.3)
_LAST_NAME, _FIRST_NAME, _PATIENT_ID = 0, 1, 2
_AGE, _BIRTH_DATE, _SEX = 4, 5, 8
_ACQUIRING_DEVICE, _INSTITUTION = 14, 16
_ACQUISITION_DATE, _ACQUISITION_TIME = 25, 26
_HIGH_PASS, _LOW_PASS, _FILTER_BITS = 27, 28, 29
_TERMINATOR = 255
_SEXES = {1: "M", 2: "F"}
_AGE_UNITS = {1: "Y", 2: "M", 3: "W", 4: "D"}
UNDEFINED = (29999, 29998, 29997, 19999)  # 'not computed', 'rejected', ...
_UNDEFINED_AXIS = 999
_TEXT_ENCODING = "latin-1"  # SCP-ECG v2 text is ISO 8859-1 unless section 1 says otherwise


def read_tags(data: bytes, warnings: list[str]) -> dict[int, bytes]:
    """Section 1's tag/length/value fields up to the terminator; a field that would run
    past the section ends the list with a warning (the rest is not trusted)."""
    tags: dict[int, bytes] = {}
    offset = 0
    while offset + 3 <= len(data):
        tag, length = struct.unpack_from("<BH", data, offset)
        if tag == _TERMINATOR or (tag == 0 and length == 0):
            break
        if offset + 3 + length > len(data):
            warnings.append(f"section 1 tag {tag} runs past the section; later fields ignored")
            break
        tags.setdefault(tag, data[offset + 3 : offset + 3 + length])
        offset += 3 + length
    return tags


def text(value: bytes | None) -> str | None:
    if not value:
        return None
    decoded = value.split(b"\x00")[0].decode(_TEXT_ENCODING).strip()
    return decoded or None


def scp_date(value: bytes | None, warnings: list[str]) -> date | None:
    """Year (2 bytes), month, day. The year is little-endian in the standard; some recorders
    write it big-endian, which shows as an impossible year."""
    if not value or len(value) < 4:
        return None
    month, day = value[2], value[3]
    for order in ("<", ">"):
        year = struct.unpack_from(f"{order}H", value, 0)[0]
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        if 1900 <= year <= 2200:
            if order == ">":
                warnings.append("section 1 dates are big-endian (the standard is little-endian)")
            return found
    return None


def scp_time(value: bytes | None) -> time | None:
    if not value or len(value) < 3:
        return None
    try:
        return time(value[0], value[1], value[2])
    except ValueError:
        return None


def acquisition(tags: dict[int, bytes], warnings: list[str]) -> datetime | None:
    day = scp_date(tags.get(_ACQUISITION_DATE), warnings)
    clock = scp_time(tags.get(_ACQUISITION_TIME))
    return datetime.combine(day, clock) if day and clock else None


def person_name(tags: dict[int, bytes]) -> str | None:
    last, first = text(tags.get(_LAST_NAME)), text(tags.get(_FIRST_NAME))
    if not last and not first:
        return None
    return f"{last or ''}^{first}" if first else last


def age(tags: dict[int, bytes]) -> str | None:
    value = tags.get(_AGE)
    if not value or len(value) < 3:
        return None
    number, unit = struct.unpack_from("<H", value, 0)[0], value[2]
    return age_string(number, _AGE_UNITS[unit]) if unit in _AGE_UNITS else None


def birth_date(tags: dict[int, bytes], warnings: list[str]) -> str | None:
    day = scp_date(tags.get(_BIRTH_DATE), warnings)
    return day.strftime("%Y%m%d") if day else None


def sex(tags: dict[int, bytes]) -> str | None:
    value = tags.get(_SEX)
    return _SEXES.get(value[0]) if value else None


def device(tags: dict[int, bytes]) -> tuple[str | None, str | None, str | None]:
    """Manufacturer, model and serial number from the acquiring device's identification
    (tag 14): fixed fields, the model at bytes 8-13, then from byte 36 NUL-terminated
    strings: analysing program revision, serial number, system software, SCP
    implementation, manufacturer."""
    value = tags.get(_ACQUIRING_DEVICE)
    if not value or len(value) < 36:
        return None, None, None
    model = text(value[8:14])
    # the revision's length byte is not trusted (writers differ on counting its NUL)
    strings = value[36:].split(b"\x00")
    serial = text(strings[1]) if len(strings) > 1 else None
    manufacturer = text(strings[4]) if len(strings) > 4 else None
    return manufacturer, model, serial


def filters(tags: dict[int, bytes]) -> str | None:
    high = tags.get(_HIGH_PASS)
    low = tags.get(_LOW_PASS)
    bits = tags.get(_FILTER_BITS)
    notch = None
    if bits:
        notch = 60.0 if bits[0] & 0x01 else 50.0 if bits[0] & 0x02 else None
    return describe_filters(
        struct.unpack_from("<H", high, 0)[0] / 100 if high and len(high) >= 2 else None,
        float(struct.unpack_from("<H", low, 0)[0]) if low and len(low) >= 2 else None,
        notch,
    )


def global_measurements(data: bytes | None) -> tuple[tuple[str, float], ...]:
    """Section 7: average RR, and for the dominant beat type the P, QRS and T boundaries
    (ms) and axes (degrees)."""
    if not data or len(data) < 6 + 16:
        return ()
    rr = struct.unpack_from("<H", data, 2)[0]
    p_on, p_off, qrs_on, qrs_off, t_off, p_axis, qrs_axis, t_axis = struct.unpack_from(
        "<HHHHHhhh", data, 6
    )
    found: dict[str, float] = {}

    def keep(key: str, value: float, *parts: int) -> None:
        if all(part not in UNDEFINED for part in parts):
            found[key] = value

    keep("rr_ms", rr, rr)
    if rr and rr not in UNDEFINED:
        found["heart_rate_bpm"] = round(60000 / rr)
    keep("p_duration_ms", p_off - p_on, p_on, p_off)
    keep("pr_ms", qrs_on - p_on, p_on, qrs_on)
    keep("qrs_ms", qrs_off - qrs_on, qrs_on, qrs_off)
    keep("qt_ms", t_off - qrs_on, t_off, qrs_on)
    for key, axis in (("p_axis_deg", p_axis), ("qrs_axis_deg", qrs_axis), ("t_axis_deg", t_axis)):
        if axis != _UNDEFINED_AXIS:
            keep(key, axis, axis)
    return tuple(found.items())


def statements(data: bytes | None) -> tuple[str, ...]:
    """Sections 8 and 11: confirmed flag, date, time, count, then per statement a
    sequence number, a length and the text (section 11 puts a type byte first)."""
    if not data or len(data) < 9:
        return ()
    count = data[8]
    found, offset = [], 9
    for _ in range(count):
        if offset + 3 > len(data):
            break
        length = struct.unpack_from("<H", data, offset + 1)[0]
        value = data[offset + 3 : offset + 3 + length]
        offset += 3 + length
        words = [text(part) for part in value.split(b"\x00")]
        printable = ("".join(c for c in w if c.isprintable()).strip() for w in words if w)
        statement = " ".join(w for w in printable if w)
        if statement:
            found.append(statement)
    return tuple(found)
