"""Training, in five sub-packages that say what they hold: ``data`` (the datasets, their readers,
splits and augmentation), ``downloads`` (fetching the public sets with checksums), ``model`` (the
SLAYER-style blocks, delays, recurrences, the deployed arithmetic and checkpoints), ``loop`` (the
presets, the training step and the run) and ``sweeps`` (many trainings and their table).
Imports no Lava."""
