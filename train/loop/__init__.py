"""The training loop: the presets and settings (``config.py``), one optimisation step
(``step.py``), the activity penalty and pruning (``regularization.py``), the run itself with its
checkpoints and resume (``trainer.py``) and the run's figures (``plots.py``)."""
