"""Quantization to Loihi 2 fixed point, the .net (NetX HDF5) writer/reader, and the batched emulator."""
