"""Diagnosing end-token collapse (problem 1 of the mission), in pure NumPy.

`diagnose(predictions, references, targets=None)` measures decoded outputs
(token ids or text) against references and, when given, the training targets,
and returns a `Diagnosis`: a verdict about the end token (`collapsed`,
`at_risk`, `healthy`), the reasons, the fixes that apply, notes (looping or a
dominant token is a content note, not a reason), `to_dict()` for JSON and
`to_text()` for people.
`save_plots(diagnosis, directory)` writes the PNG charts (needs matplotlib).

Modules: `outputs` (measures on outputs), `targets` (class counts, padding),
`verdict` (thresholds, verdict, fixes, content notes), `report` (`Diagnosis`), `plots`,
`translator` (decodes a kit translator or run into token ids for `diagnose`; imports
TensorFlow when called, the other modules never do).
"""

from seq2seq.diagnostics.outputs import OutputStats, analyze_outputs
from seq2seq.diagnostics.plots import save_plots
from seq2seq.diagnostics.report import Diagnosis, diagnose, render_text
from seq2seq.diagnostics.targets import TargetStats, analyze_targets, recommended_end_weight
from seq2seq.diagnostics.translator import decode_run, diagnose_translator
from seq2seq.diagnostics.verdict import VERDICTS, Thresholds


__all__ = [
    "VERDICTS",
    "Diagnosis",
    "OutputStats",
    "TargetStats",
    "Thresholds",
    "analyze_outputs",
    "analyze_targets",
    "decode_run",
    "diagnose",
    "diagnose_translator",
    "recommended_end_weight",
    "render_text",
    "save_plots",
]
