"""The labelled scenario runner of issue 8: ``python -m bench.scenarios`` (``make scenarios``).

Scripted attackers of every kind and benign edge cases drive the demo site of a real server over HTTP; the
runner prints, per detector, what was detected, missed and falsely alerted, and the time to alert, and writes
``bench/results/scenarios.json``. ``catalogue`` holds the scenarios, ``runner`` runs and scores them.
"""
