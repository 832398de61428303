"""Lava side: the network builder, runner and parity check (processes live in .processes)."""
