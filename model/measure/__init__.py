"""Global measurements of a resting ECG, by the IEC 60601-2-25 convention.

    measure(ecg) -> EcgMeasurement    intervals, axes, amplitudes, beats, fiducials

The modules, in the order the pipeline runs them (docs/measurement.md describes the
method, its references and its calibration):

    leads       the standard twelve leads (missing limb leads derived), at 500 Hz
    qrs         global QRS onset and offset on the spatial velocity of the median beats
    waves       T wave end and P wave extent on their spatial magnitude
    fiducials   the global fiducials and the intervals between them, nulled with reasons
    amplitudes  each lead's Q, R, S, R' and the frontal P, QRS and T axes
    atrial_waves  flutter waves or the P wave, by each test below in turn; the atria beat by beat
    atrial      flutter waves left once the QRS-T complexes are cancelled, or locked to them;
                fibrillatory waves
    conducted_flutter  flutter waves at fixed 2:1-4:1 conduction, repeating inside the ST-T
    p_on_t      a sinus P wave on the previous T wave, where no P wave could be delimited
    rhythm      beat by beat: premature beats' origin, P waves, what premature beats explain
    paced       whether a pacemaker drives the rhythm; intervals its stimuli overlap
    result      the EcgMeasurement returned, with Fiducials and LeadAmplitudes
    pipeline    measure() itself
"""

from model.measure.amplitudes import frontal_axis, net_area
from model.measure.atrial import (
    DRIFT_BETWEEN_RRS,
    DRIFT_PEAK_LEADS,
    FIBRILLATORY_HZ,
    FLUTTER_HZ,
    ORGANISED_SHARE,
    RR_PEAK_LEADS,
)
from model.measure.fiducials import P_WAVE_KEYS
from model.measure.leads import PRE, canonical_lead_name, standard_twelve
from model.measure.paced import (
    MIN_INTERMITTENT_PACED_FRACTION,
    MIN_PACED_BEATS,
    MIN_PACED_FRACTION,
    pacemaker_drives,
    pacemaker_paces,
)
from model.measure.pipeline import measure
from model.measure.result import FLUTTER_MIN_MV, EcgMeasurement, Fiducials, LeadAmplitudes
from model.measure.waves import SINUS_P_AXIS

__all__ = [
    "DRIFT_BETWEEN_RRS",
    "DRIFT_PEAK_LEADS",
    "FIBRILLATORY_HZ",
    "FLUTTER_HZ",
    "FLUTTER_MIN_MV",
    "MIN_INTERMITTENT_PACED_FRACTION",
    "MIN_PACED_BEATS",
    "MIN_PACED_FRACTION",
    "ORGANISED_SHARE",
    "PRE",
    "P_WAVE_KEYS",
    "RR_PEAK_LEADS",
    "SINUS_P_AXIS",
    "EcgMeasurement",
    "Fiducials",
    "LeadAmplitudes",
    "canonical_lead_name",
    "frontal_axis",
    "measure",
    "net_area",
    "pacemaker_drives",
    "pacemaker_paces",
    "standard_twelve",
]
