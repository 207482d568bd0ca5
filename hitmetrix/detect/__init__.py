"""Detection: a second consumer of the spool that turns events into alerts, risk and decisions.

See docs/detection.md. ``engine`` reads sealed spool segments with its own cursor,
``observation`` flattens stored events for the detectors in ``detectors/``.
"""
