"""The training loop: the presets and settings (``config.py``), one optimisation step
(``step.py``), the activity penalty and pruning (``regularization.py``), the run itself
(``trainer.py``) with what it trains with (``training_run.py``), its folder and the checks before a
resume (``run_folder.py``), the epoch it keeps (``selection.py``) and its devices (``devices.py``), and the
run's figures (``plots.py``)."""
