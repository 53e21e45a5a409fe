"""SCP-ECG statement codes as PTB-XL uses them: English description and SNOMED CT code.

Generated once from PTB-XL's scp_statements.csv (Wagner et al. 2020, CC-BY 4.0)
and shipped here because an installed gateway cannot read ../shared. The SNOMED
CT concept is the one the PhysioNet/CinC Challenge 2021 mapping
(dx_mapping_scored.csv / dx_mapping_unscored.csv, evaluation-2021) gives for the
same finding; None where that mapping has no concept that means the same thing.
LAD and RAD are not SCP statements (PTB-XL keeps the axis in its heart_axis
column), nor is PJC (junctional premature complex, CinC 2021's concept). They carry the AHA meaning and SNOMED concept: QRS axis beyond -30
degrees (PTB-XL's "ALAD"; its "LAD" means -30..+30) and beyond +90 degrees
(PTB-XL's "RAD" and "ARAD").
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class ScpStatement(NamedTuple):
    code: str
    description: str
    kind: Literal["diagnostic", "form", "rhythm"]
    snomed: str | None


STATEMENTS: dict[str, ScpStatement] = {
    "NDT": ScpStatement("NDT", "non-diagnostic T abnormalities", "diagnostic", None),
    "NST_": ScpStatement("NST_", "non-specific ST changes", "diagnostic", "428750005"),
    "DIG": ScpStatement("DIG", "digitalis-effect", "diagnostic", None),
    "LNGQT": ScpStatement("LNGQT", "long QT-interval", "diagnostic", "111975006"),
    "NORM": ScpStatement("NORM", "normal ECG", "diagnostic", None),
    "IMI": ScpStatement("IMI", "inferior myocardial infarction", "diagnostic", None),
    "ASMI": ScpStatement("ASMI", "anteroseptal myocardial infarction", "diagnostic", None),
    "LVH": ScpStatement("LVH", "left ventricular hypertrophy", "diagnostic", "164873001"),
    "LAFB": ScpStatement("LAFB", "left anterior fascicular block", "diagnostic", "445118002"),
    "ISC_": ScpStatement("ISC_", "non-specific ischemic", "diagnostic", None),
    "IRBBB": ScpStatement(
        "IRBBB", "incomplete right bundle branch block", "diagnostic", "713426002"
    ),
    "1AVB": ScpStatement("1AVB", "first degree AV block", "diagnostic", "270492004"),
    "IVCD": ScpStatement(
        "IVCD",
        "non-specific intraventricular conduction disturbance (block)",
        "diagnostic",
        "698252002",
    ),
    "ISCAL": ScpStatement("ISCAL", "ischemic in anterolateral leads", "diagnostic", None),
    "CRBBB": ScpStatement("CRBBB", "complete right bundle branch block", "diagnostic", "713427006"),
    "CLBBB": ScpStatement("CLBBB", "complete left bundle branch block", "diagnostic", "733534002"),
    "ILMI": ScpStatement("ILMI", "inferolateral myocardial infarction", "diagnostic", None),
    "LAO/LAE": ScpStatement(
        "LAO/LAE", "left atrial overload/enlargement", "diagnostic", "253352002"
    ),
    "AMI": ScpStatement("AMI", "anterior myocardial infarction", "diagnostic", None),
    "ALMI": ScpStatement("ALMI", "anterolateral myocardial infarction", "diagnostic", None),
    "ISCIN": ScpStatement("ISCIN", "ischemic in inferior leads", "diagnostic", None),
    "INJAS": ScpStatement(
        "INJAS", "subendocardial injury in anteroseptal leads", "diagnostic", None
    ),
    "LMI": ScpStatement("LMI", "lateral myocardial infarction", "diagnostic", None),
    "ISCIL": ScpStatement("ISCIL", "ischemic in inferolateral leads", "diagnostic", None),
    "LPFB": ScpStatement("LPFB", "left posterior fascicular block", "diagnostic", "445211001"),
    "ISCAS": ScpStatement("ISCAS", "ischemic in anteroseptal leads", "diagnostic", None),
    "INJAL": ScpStatement(
        "INJAL", "subendocardial injury in anterolateral leads", "diagnostic", None
    ),
    "ISCLA": ScpStatement("ISCLA", "ischemic in lateral leads", "diagnostic", None),
    "RVH": ScpStatement("RVH", "right ventricular hypertrophy", "diagnostic", "89792004"),
    "ANEUR": ScpStatement(
        "ANEUR", "ST-T changes compatible with ventricular aneurysm", "diagnostic", None
    ),
    "RAO/RAE": ScpStatement(
        "RAO/RAE", "right atrial overload/enlargement", "diagnostic", "253339007"
    ),
    "EL": ScpStatement("EL", "electrolytic disturbance or drug (former EDIS)", "diagnostic", None),
    "WPW": ScpStatement("WPW", "Wolf-Parkinson-White syndrome", "diagnostic", "74390002"),
    "ILBBB": ScpStatement(
        "ILBBB", "incomplete left bundle branch block", "diagnostic", "251120003"
    ),
    "IPLMI": ScpStatement(
        "IPLMI", "inferoposterolateral myocardial infarction", "diagnostic", None
    ),
    "ISCAN": ScpStatement("ISCAN", "ischemic in anterior leads", "diagnostic", None),
    "IPMI": ScpStatement("IPMI", "inferoposterior myocardial infarction", "diagnostic", None),
    "SEHYP": ScpStatement("SEHYP", "septal hypertrophy", "diagnostic", None),
    "INJIN": ScpStatement("INJIN", "subendocardial injury in inferior leads", "diagnostic", None),
    "INJLA": ScpStatement("INJLA", "subendocardial injury in lateral leads", "diagnostic", None),
    "PMI": ScpStatement("PMI", "posterior myocardial infarction", "diagnostic", None),
    "3AVB": ScpStatement("3AVB", "third degree AV block", "diagnostic", "27885002"),
    "INJIL": ScpStatement(
        "INJIL", "subendocardial injury in inferolateral leads", "diagnostic", None
    ),
    "2AVB": ScpStatement("2AVB", "second degree AV block", "diagnostic", "195042002"),
    "ABQRS": ScpStatement("ABQRS", "abnormal QRS", "form", "164951009"),
    "PVC": ScpStatement("PVC", "ventricular premature complex", "form", "427172004"),
    "STD_": ScpStatement("STD_", "non-specific ST depression", "form", "429622005"),
    "VCLVH": ScpStatement(
        "VCLVH", "voltage criteria (QRS) for left ventricular hypertrophy", "form", "55827005"
    ),
    "QWAVE": ScpStatement("QWAVE", "Q waves present", "form", "164917005"),
    "LOWT": ScpStatement("LOWT", "low amplitude T-waves", "form", None),
    "NT_": ScpStatement("NT_", "non-specific T-wave changes", "form", None),
    "PAC": ScpStatement("PAC", "atrial premature complex", "form", "284470004"),
    "LPR": ScpStatement("LPR", "prolonged PR interval", "form", "164947007"),
    "INVT": ScpStatement("INVT", "inverted T-waves", "form", "59931005"),
    "LVOLT": ScpStatement(
        "LVOLT", "low QRS voltages in the frontal and horizontal leads", "form", "251146004"
    ),
    "HVOLT": ScpStatement("HVOLT", "high QRS voltage", "form", None),
    "TAB_": ScpStatement("TAB_", "T-wave abnormality", "form", "164934002"),
    "STE_": ScpStatement("STE_", "non-specific ST elevation", "form", "164931005"),
    "PRC(S)": ScpStatement("PRC(S)", "premature complex(es)", "form", None),
    "SR": ScpStatement("SR", "sinus rhythm", "rhythm", "426783006"),
    "AFIB": ScpStatement("AFIB", "atrial fibrillation", "rhythm", "164889003"),
    "STACH": ScpStatement("STACH", "sinus tachycardia", "rhythm", "427084000"),
    "SARRH": ScpStatement("SARRH", "sinus arrhythmia", "rhythm", "427393009"),
    "SBRAD": ScpStatement("SBRAD", "sinus bradycardia", "rhythm", "426177001"),
    "PACE": ScpStatement("PACE", "normal functioning artificial pacemaker", "rhythm", "10370003"),
    "SVARR": ScpStatement("SVARR", "supraventricular arrhythmia", "rhythm", None),
    "BIGU": ScpStatement(
        "BIGU", "bigeminal pattern (unknown origin, SV or Ventricular)", "rhythm", None
    ),
    "AFLT": ScpStatement("AFLT", "atrial flutter", "rhythm", "164890007"),
    "SVTAC": ScpStatement("SVTAC", "supraventricular tachycardia", "rhythm", "426761007"),
    "PSVT": ScpStatement("PSVT", "paroxysmal supraventricular tachycardia", "rhythm", "67198005"),
    "TRIGU": ScpStatement(
        "TRIGU", "trigeminal pattern (unknown origin, SV or Ventricular)", "rhythm", None
    ),
    # Not an SCP statement: SCP has no junctional premature beat (PTB-XL codes it
    # PRC(S), premature complexes); the concept is CinC 2021's JPC.
    "PJC": ScpStatement("PJC", "junctional premature complex", "form", "251164006"),
    # Not SCP statements: PTB-XL records the axis in its heart_axis column instead.
    "LAD": ScpStatement("LAD", "left axis deviation", "form", "39732003"),
    "RAD": ScpStatement("RAD", "right axis deviation", "form", "47665007"),
}
