"""The AdLIF neuron program for a Loihi 2 neuro-core, lowered from the fixed-point step.

:func:`adlif_microcode_program` gives, for each equation of
``snn_toolchain.neurons.dynamics.ADLIF_FIXED_EQUATIONS`` (the arithmetic of ``adlif_fixed_step``,
kept as data), a hand-written block of microcode-like integer instructions; :func:`run_microcode` executes them on numpy arrays so
the tests prove the program equals ``adlif_fixed_step`` bit for bit; and
:func:`adlif_microcode_pseudocode` prints it for whoever writes the lava-loihi ``NcProcessModel``.
Not run on a chip: Loihi 2's microcode instruction set ships with lava-loihi only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.neurons.dynamics import ADLIF_FIXED_EQUATIONS, NeuronState


@dataclass(frozen=True)
class MicroOp:
    """One instruction of the neuron program: ``dst = op(a, b)`` on signed integers.

    Operands are register names or integer constants. Ops: ADD, SUB, MUL, SHL (a << b),
    ASR (arithmetic shift right, a >> b), ABS, COPYSIGN (|a| with the sign of b, 0 stays 0),
    MIN, MAX, GT (1 if a > b else 0), MOV (dst = a).
    """

    dst: str
    op: str
    a: object
    b: object = None
    comment: str = ""


def _equations() -> dict:
    """The update equations of ``adlif_fixed_step``, as data (``ADLIF_FIXED_EQUATIONS``)."""
    return dict(ADLIF_FIXED_EQUATIONS)


def lower_multiply_fraction(dst: str, x: str, fraction: str, tmp: str) -> list:
    # multiply_fraction: trunc(x * f / 4096) toward zero, done on the magnitude so that negative
    # products round like Lava's decays (an arithmetic shift alone would floor them).
    return [MicroOp(tmp, "MUL", x, fraction, f"{x} * {fraction}: wide product (see the header)"),
            MicroOp(dst, "ABS", tmp, None),
            MicroOp(dst, "ASR", dst, C.DECAY_BITS, f"/ 2^{C.DECAY_BITS} on the magnitude"),
            MicroOp(dst, "COPYSIGN", dst, tmp, "truncated toward zero, as multiply_fraction")]


def lower_saturate(register: str) -> list:
    return [MicroOp(register, "MIN", register, C.STATE_MAX, f"sat: clip to +-(2^{C.STATE_BITS - 1} - 1)"),
            MicroOp(register, "MAX", register, -C.STATE_MAX)]


def adlif_microcode_program() -> list:
    """The neuron program, grouped as [(equation, [MicroOp, ...]), ...], one group per line of
    ``neuron_dynamics.ADLIF_FIXED_EQUATIONS``.

    Registers: state ``u, w, s`` (24-bit u and w, 1-bit s), parameters ``alpha, beta, a, b, bias,
    threshold`` (FixedNeuronParams), input ``a_in`` (the dendritic accumulator's sum for this
    step, synaptic units). New state goes to ``u_new, w_new, s_new`` and is committed at the end,
    because w[t] and u[t] both read u[t-1].
    """
    eq = _equations()
    shift = C.ACTIVATION_SHIFT
    return [
        (eq["I"], [MicroOp("current", "ADD", "a_in", "bias"),
                   MicroOp("current", "SHL", "current", shift, f"<< {shift}: membrane units")]),
        (eq["w[t]"], lower_multiply_fraction("decayed_w", "w", "beta", "product") + lower_multiply_fraction("coupled_u", "u", "a", "product") + [
            MicroOp("jump", "MUL", "b", "s", "b * s[t-1]"),
            MicroOp("w_new", "ADD", "decayed_w", "coupled_u"),
            MicroOp("w_new", "ADD", "w_new", "jump")] + lower_saturate("w_new")),
        (eq["u[t]"], [MicroOp("reset", "MUL", "threshold", "s", "soft reset of the last spike"),
                      MicroOp("reset", "SUB", "u", "reset")] + lower_multiply_fraction("leak", "reset", "alpha", "product") + [
            MicroOp("input_gain", "SUB", C.DECAY_UNITY, "alpha", f"{C.DECAY_UNITY} - alpha (may be precomputed)"),
            MicroOp("drive", "SUB", "current", "w_new")] + lower_multiply_fraction("drive", "drive", "input_gain", "product") + [
            MicroOp("u_new", "ADD", "leak", "drive")] + lower_saturate("u_new")),
        (eq["s[t]"], [MicroOp("s_new", "GT", "u_new", "threshold", "strict, as Lava's LIF"),
                      MicroOp("u", "MOV", "u_new", None, "commit the new state"),
                      MicroOp("w", "MOV", "w_new", None),
                      MicroOp("s", "MOV", "s_new", None, "send a spike when s = 1")]),
    ]


def run_microcode(params, state, synaptic_input):
    """Execute :func:`adlif_microcode_program` on int64 numpy arrays; returns NeuronState(u, w, s).

    Exists so that the tests can prove the program equals ``adlif_fixed_step`` bit for bit: the
    program is a lowering of that function, not a second definition of the neuron.
    """
    registers = {name: np.asarray(getattr(params, name), dtype=np.int64)
                 for name in ("alpha", "beta", "a", "b", "bias", "threshold")}
    registers.update(u=np.asarray(state.u, dtype=np.int64), w=np.asarray(state.w, dtype=np.int64),
                     s=np.asarray(state.s, dtype=np.int64), a_in=np.asarray(synaptic_input, dtype=np.int64))

    def value(operand):
        return registers[operand] if isinstance(operand, str) else np.int64(operand)

    operations = {
        "ADD": lambda a, b: a + b, "SUB": lambda a, b: a - b, "MUL": lambda a, b: a * b,
        "SHL": lambda a, b: a << b, "ASR": lambda a, b: a >> b, "ABS": lambda a, b: np.abs(a),
        "COPYSIGN": lambda a, b: np.where(b < 0, -a, a), "MIN": np.minimum, "MAX": np.maximum,
        "GT": lambda a, b: (a > b).astype(np.int64), "MOV": lambda a, b: a,
    }
    for _, ops in adlif_microcode_program():
        for op in ops:
            registers[op.dst] = operations[op.op](value(op.a), value(op.b) if op.b is not None else None)
    return NeuronState(registers["u"], registers["w"], registers["s"])


def adlif_microcode_pseudocode() -> str:
    """The AdLIF neuron program as microcode-like text, for whoever writes the NcProcessModel.

    Generated from ``neuron_dynamics.ADLIF_FIXED_EQUATIONS`` (quoted, not restated) and the
    lowering in :func:`adlif_microcode_program`, which
    the tests run against that function. Not run on a chip: the instruction set of Loihi 2's
    neuron microcode is part of lava-loihi and was not available here.
    """
    lines = [
        "; AdLIF neuron program for a Loihi 2 neuro-core, one pass per neuron per time step.",
        "; Source of truth: snn_toolchain.neurons.dynamics.adlif_fixed_step (its equations,",
        "; ADLIF_FIXED_EQUATIONS, are quoted below; every block implements the equation above it). Checked bit for bit",
        "; against that function by tests/test_loihi2_plan.py (run_microcode). x*f = multiply_fraction,",
        f"; sat = clip to +-(2^{C.STATE_BITS - 1} - 1). Not run on a chip.",
        ";",
        f"; state:  u, w  signed {C.STATE_BITS}-bit (membrane units), s  1 bit (spike of the last step)",
        f"; params: alpha, beta  {C.DECAY_BITS}-bit fractions 0..{C.DECAY_UNITY};  a  signed {C.DECAY_BITS}-bit "
        "fraction;",
        f";         b  membrane units;  bias  int16 synaptic units;  threshold = vThMant << {C.ACTIVATION_SHIFT}",
        "; input:  a_in  this step's dendritic accumulator (sum of weight x spike over arrived delayed spikes)",
        "; products: a 24-bit state times a 13-bit fraction needs 37 bits; the drive I - w[t] is not",
        "; saturated before its multiply, so its width grows with fan-in and input (int64 in the reference).",
        "; Split the multiplies if the neuro-core's multiplier is narrower; the result must stay bit-exact.",
    ]
    for equation, ops in adlif_microcode_program():
        lines.append(";")
        lines.append(f"; {equation}")
        for op in ops:
            operands = ", ".join(str(x) for x in (op.a, op.b) if x is not None)
            text = f"    {op.op:<8} {op.dst:<11} <- {operands}"
            lines.append(f"{text:<48}; {op.comment}" if op.comment else text)
    return "\n".join(lines)
