"""routes.yaml: schema, errors with their lines, rule matching, hot reload, CLI."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest
from delivery_support import package
from example_reports import afib_report

from gateway.cli import main
from gateway.routing import (
    FileDestination,
    Hl7Destination,
    MatchContext,
    Router,
    RoutesError,
    check_routes,
    engine_for,
    load_routes,
    patient_key,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "routes.example.yaml"


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_shipped_routes_send_everything_to_the_outbox_in_the_data_dir(
    shared_data: Path, tmp_path: Path
) -> None:
    assert check_routes(REPO / "config" / "routes.yaml") == []
    router = Router(REPO / "config" / "routes.yaml", tmp_path / "data")
    outbox = router.destination("outbox")
    assert isinstance(outbox, FileDestination) and outbox.directory == tmp_path / "data" / "outbox"
    pkg = package(shared_data, report=afib_report())
    assert router.destinations_for(pkg) == [("outbox", patient_key(pkg))]


def test_example_routes_are_valid_and_route_by_statement_kind_and_ae(
    shared_data: Path, tmp_path: Path
) -> None:
    assert check_routes(EXAMPLE) == []
    router = Router(EXAMPLE, tmp_path)
    sinus_from_ward = package(shared_data, calling_ae="WARD7")
    assert router.decide(sinus_from_ward).destinations == ("ehr-fhir",)
    assert router.decide(sinus_from_ward).used_default
    afib_from_cardio = package(shared_data, report=afib_report(), calling_ae="cardio2")
    decision = router.decide(afib_from_cardio)
    assert decision.matched_rules == ("urgent-afib-long-qt", "cardiology-carts")
    assert decision.destinations == ("urgent-hl7", "ehr-fhir", "ris-hl7")
    assert not decision.used_default
    afib_from_ward = package(shared_data, report=afib_report(), calling_ae="WARD7")
    assert router.decide(afib_from_ward).destinations == ("urgent-hl7", "ehr-fhir")
    scanned = package(shared_data, calling_ae="CARDIO1")
    scanned.kind = "secondary-capture"
    assert router.decide(scanned).destinations == ("outbox", "ehr-fhir")
    hl7 = router.destination("ris-hl7")
    assert isinstance(hl7, Hl7Destination) and hl7.address == (
        "interface-engine.hospital.example",
        2575,
        False,
    )


def test_match_on_called_ae_institution_station_and_modality(
    shared_data: Path, tmp_path: Path
) -> None:
    routes = _write(
        tmp_path / "routes.yaml",
        """
        destinations:
          a: {type: file, directory: a}
          b: {type: file, directory: b}
        rules:
          - name: north-wing
            match:
              called_ae: ECGGW_NORTH
              institution: ["St. Mary*"]
              station: ["CART-1?"]
              modality: ECG
            destinations: [a]
        default: [b]
        """,
    )
    router = Router(routes, tmp_path)
    pkg = package(shared_data, institution_name="St. Mary's Hospital", station_name="cart-12")
    assert router.decide(pkg).destinations == ("b",)  # called AE is ECGGW
    pkg.association = type(pkg.association)("CART1", "ECGGW_NORTH", "10.0.0.5")
    assert router.decide(pkg).destinations == ("a",)
    pkg.metadata = pkg.metadata.with_updates(modality="OT")
    assert router.decide(pkg).destinations == ("b",)


def test_every_error_is_reported_with_its_line(tmp_path: Path) -> None:
    routes = _write(
        tmp_path / "routes.yaml",
        """
        destinations:
          ehr:
            type: fhir
            endpoint: not a url
            auth:
              type: bearer
              token: abc123
          ris:
            type: hl7
            endpoint: http://ris:2575
            hl7:
              accept_ack_type: XX
          odd:
            type: ftp
          drop:
            type: file
            directory: out
            retry: {max_attempts: 0, backoff_base: soon}
            colour: blue
        rules:
          - name: urgent
            match: {statement_codes: AFIB, kind: ecg}
            destinations: [ehr, nowhere]
          - name: urgent
            destinations: [drop]
        default: [outbox]
        """,
    )
    issues = {(issue.line, issue.where) for issue in check_routes(routes)}
    assert issues == {
        (4, "destinations.ehr.endpoint"),
        (7, "destinations.ehr.auth.token"),
        (10, "destinations.ris.endpoint"),
        (12, "destinations.ris.hl7.accept_ack_type"),
        (13, "destinations.odd"),
        (18, "destinations.drop.retry.max_attempts"),
        (18, "destinations.drop.retry.backoff_base"),
        (19, "destinations.drop.colour"),
        (22, "rules[0].match.kind[0]"),
        (23, "rules[0].destinations[1]"),
        (24, "rules[1].name"),
        (26, "default[0]"),
    }
    messages = {issue.where: issue.message for issue in check_routes(routes)}
    assert "secrets never go in routes.yaml" in messages["destinations.ehr.auth.token"]
    assert messages["rules[0].destinations[1]"] == "unknown destination 'nowhere'"
    assert "not a duration" in messages["destinations.drop.retry.backoff_base"]


def test_yaml_syntax_and_duplicate_keys_have_lines(tmp_path: Path) -> None:
    broken = _write(
        tmp_path / "broken.yaml",
        """
        destinations:
          a: {type: file, directory: a
        default: [a]
        """,
    )
    [issue] = check_routes(broken)
    assert issue.line == 3 and "invalid YAML" in issue.message
    twice = _write(
        tmp_path / "twice.yaml",
        """
        destinations:
          a: {type: file, directory: a}
        default: [a]
        default: [a]
        """,
    )
    assert [(i.line, i.message) for i in check_routes(twice)] == [(4, "key appears twice")]


def test_paths_resolve_against_data_dir_and_routes_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    routes = _write(
        tmp_path / "conf" / "routes.yaml",
        """
        destinations:
          ehr:
            type: fhir
            endpoint: https://fhir.example/r4
            auth: {type: basic, username: gw, password: {file: secrets/fhir}}
            tls: {ca_file: ca.pem}
          out: {type: file, directory: outbox}
          abs: {type: file, directory: /srv/drop}
        default: [out]
        """,
    )
    config = load_routes(routes, tmp_path / "data")
    assert config.destinations["out"].directory == tmp_path / "data" / "outbox"
    assert config.destinations["abs"].directory == Path("/srv/drop")
    assert config.destinations["ehr"].tls.ca_file == tmp_path / "conf" / "ca.pem"
    assert config.destinations["ehr"].auth.password.file == tmp_path / "conf" / "secrets" / "fhir"


def test_hot_reload_takes_valid_changes_and_keeps_rules_on_invalid_ones(
    shared_data: Path, tmp_path: Path, caplog
) -> None:
    path = _write(
        tmp_path / "routes.yaml",
        """
        destinations:
          out: {type: file, directory: out}
        default: [out]
        """,
    )
    router = Router(path, tmp_path)
    pkg = package(shared_data, report=afib_report())
    assert router.reload_if_changed() is False
    _write(
        path,
        """
        destinations:
          out: {type: file, directory: out}
          urgent: {type: file, directory: urgent}
        rules:
          - {name: afib, match: {statement_codes: [AFIB]}, destinations: [urgent], continue: true}
        default: [out]
        """,
    )
    os.utime(path, ns=(1, 1))
    assert router.reload_if_changed() is True
    assert router.decide(pkg).destinations == ("urgent", "out")
    valid_text = path.read_text()
    path.write_text(valid_text.replace("[urgent]", "[urgnet]"))
    with caplog.at_level(logging.ERROR, logger="gateway.routing"):
        assert router.reload_if_changed() is False
        os.utime(path, ns=(2, 2))
        assert router.reload_if_changed() is False  # same bad content: not logged again
    assert router.decide(pkg).destinations == ("urgent", "out")
    [record] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert "unknown destination 'urgnet'" in record.getMessage()
    path.write_text(valid_text.replace("continue: true", "continue: false"))
    assert router.reload_if_changed() is True
    assert router.decide(pkg).destinations == ("urgent",)


def test_a_missing_routes_file_is_refused_unless_it_is_optional(
    shared_data: Path, tmp_path: Path
) -> None:
    with pytest.raises(RoutesError) as error:
        Router(tmp_path / "missing.yaml", tmp_path / "data")
    assert str(error.value) == (
        f"{tmp_path / 'missing.yaml'}: not found "
        "(to start without it, set routes_optional: true in gateway.yaml)"
    )
    router = Router(tmp_path / "missing.yaml", tmp_path / "data", optional=True)
    assert router.destinations_for(package(shared_data))[0][0] == "outbox"
    assert router.destination("outbox").directory == tmp_path / "data" / "outbox"


def test_an_invalid_file_at_start_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "routes.yaml", "destinations: {}\ndefault: []\n")
    with pytest.raises(RoutesError) as error:
        Router(path, tmp_path)
    assert f"{path}:1: destinations" in str(error.value)


def test_patient_key_orders_by_patient_without_holding_the_id(shared_data: Path) -> None:
    first = package(shared_data, uid_suffix="1")
    second = package(shared_data, uid_suffix="2")
    other = package(shared_data, patient_id="OTHER-1")
    assert patient_key(first) == patient_key(second) != patient_key(other)
    assert "000001" not in patient_key(first)
    anonymous = [package(shared_data, patient_id=None, uid_suffix=s) for s in "12"]
    assert patient_key(anonymous[0]) != patient_key(anonymous[1])


def test_cli_routes_check(tmp_path: Path, capsys) -> None:
    assert main(["routes", "check", str(EXAMPLE)]) == 0
    assert "OK, 6 destinations, 4 rules" in capsys.readouterr().out
    bad = _write(
        tmp_path / "routes.yaml",
        """
        destinations:
          out: {type: file}
        default: [elsewhere]
        """,
    )
    assert main(["routes", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: destinations.out.directory: Field required" in err
    assert f"{bad}:3: default[0]: unknown destination 'elsewhere'" in err
    assert "2 error(s)" in err


def test_routes_check_refuses_a_fhir_endpoint_without_a_host(tmp_path: Path, capsys) -> None:
    bad = _write(
        tmp_path / "routes.yaml",
        """
        destinations:
          ehr: {type: fhir, endpoint: "http:///fhir"}
          ris: {type: fhir, endpoint: "http:/fhir"}
          ok: {type: fhir, endpoint: "http://ehr.example/fhir"}
        default: [ehr, ris, ok]
        """,
    )
    assert main(["routes", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: destinations.ehr.endpoint: 'http:///fhir' names no host" in err
    assert f"{bad}:3: destinations.ris.endpoint: 'http:/fhir' names no host" in err
    assert "2 error(s)" in err


def test_cli_routes_test_shows_rules_and_destinations(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    from tests import dicom_samples

    scan = dicom_samples.secondary_capture_native(shared_data, tmp_path / "scan.dcm")
    argv = ["routes", "test", str(scan), "-r", str(EXAMPLE), "--calling-ae", "CARDIO4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "object:      secondary-capture" in out
    assert "  -                    urgent-afib-long-qt -> urgent-hl7, continue" in out
    assert "  match                images-to-outbox -> outbox, ehr-fhir" in out
    assert "  -                    cardiology-carts -> ehr-fhir, ris-hl7" in out  # modality OT
    assert "default:     not used" in out
    assert out.rstrip().endswith("ehr-fhir             fhir   https://fhir.hospital.example/r4")
    assert "TEST" not in out  # the patient ID stays out
    assert "order:       priority -, facility -, procedure -" in out
    assert "  -                    stat-emergency -> urgent-hl7, continue" in out

    assert main([*argv, "--priority", "stat", "--ordering-facility", "ED-NORTH"]) == 0
    out = capsys.readouterr().out
    assert "order:       priority stat, facility ED-NORTH, procedure -" in out
    assert "  match                stat-emergency -> urgent-hl7, continue" in out
    assert "  urgent-hl7 " in out.split("destinations:")[-1]


def test_rules_choose_the_engine_from_intake_facts_only(tmp_path: Path) -> None:
    routes = _write(
        tmp_path / "routes.yaml",
        """
        destinations:
          drop: {type: file, directory: out}
        rules:
          - name: cardiology-carts
            match: {calling_ae: "CART*", kind: ecg-waveform}
            engine: hybrid
            destinations: [drop]
            continue: true
          - name: scans
            match: {kind: secondary-capture}
            engine: measure
            destinations: [drop]
          - name: urgent
            match: {statement_codes: AFIB}
            destinations: [drop]
        default: [drop]
        """,
    )
    config = load_routes(routes, tmp_path)
    assert engine_for(config, MatchContext.at_intake("CART7", "ECGGW", "ecg-waveform")) == "hybrid"
    assert engine_for(config, MatchContext.at_intake("MUSE", "ECGGW", "secondary-capture")) == (
        "measure"
    )
    assert engine_for(config, MatchContext.at_intake("MUSE", "ECGGW", "ecg-waveform")) is None
    assert Router(routes, tmp_path).names_engines
    assert not Router(tmp_path / "none.yaml", tmp_path, optional=True).names_engines  # no rules


def test_an_engine_rule_matching_on_statement_codes_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    routes = _write(
        tmp_path / "routes.yaml",
        """
        destinations:
          drop: {type: file, directory: out}
        rules:
          - name: afib-to-vlm
            match: {statement_codes: AFIB}
            engine: vlm
            destinations: [drop]
          - name: odd
            engine: gpt
            destinations: [drop]
        default: [drop]
        """,
    )
    issues = {issue.where: issue for issue in check_routes(routes)}
    assert issues["rules[0]"].line == 4
    assert "cannot match on statement_codes" in issues["rules[0]"].message
    assert issues["rules[1].engine"].line == 9
