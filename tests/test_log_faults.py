"""gateway.logs.fault: how unexpected exceptions are named in logs, job errors and alerts:
type, an OS error's reason and where, never the message (it may quote a patient)."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from gateway.logs import fault

PATIENT = "DOE^JOHN 081486213"  # (a source line the stack does not show)


class _Birth(BaseModel):
    birth_date: int


def _raised(exception: BaseException) -> BaseException:
    try:
        raise exception
    except BaseException as exc:  # noqa: BLE001 - the test hands any one back
        return exc


def test_a_pydantic_error_is_named_by_type_and_line_never_by_the_input_it_quotes():
    try:
        _Birth(birth_date=PATIENT)
    except ValidationError as exc:
        assert PATIENT in str(exc)  # what pydantic would have put in the log
        named, stacked = fault(exc), fault(exc, stack=True)
    assert named.startswith("ValidationError at ") and PATIENT not in named
    assert stacked.startswith(named + "\n") and "test_log_faults.py" in stacked
    assert PATIENT not in stacked


def test_an_os_error_keeps_its_reason_not_its_file_name():
    exc = _raised(FileNotFoundError(2, "No such file or directory", f"/drop/{PATIENT}.xml"))
    assert fault(exc).startswith("FileNotFoundError (No such file or directory) at test_log")
    assert "DOE" not in fault(exc, stack=True)


def test_an_exception_never_raised_is_its_type_alone():
    assert fault(KeyError(PATIENT)) == fault(KeyError(PATIENT), stack=True) == "KeyError"
