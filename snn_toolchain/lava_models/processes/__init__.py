"""Lava Processes and ProcessModels of the toolchain (only these: Lava execs every module here when it looks for models)."""
