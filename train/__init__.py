"""Training: the datasets and their downloads, the SLAYER-style blocks (synapse, AdLIF/LIF neuron,
delay) and their recurrences, the training loop, checkpoints, sweeps and their plots. Imports no Lava."""
