"""Many trainings: the ablation sweep and its worker pool (``sweep.py``) and the table it reports
(``report.py``)."""
