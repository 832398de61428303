"""From a trained run to files and figures: the .net (NetX HDF5) writer and reader, the batched
fixed-point emulator, NIR export and import, the activity report, energy estimates, the Loihi 2 plan
and the accuracy/operations frontier. Imports no Lava (that is lava_models/)."""
