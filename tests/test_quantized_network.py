"""The network description every stage checks (snn_toolchain/quantized_network.py): quantize, the
.net reader, the planner and the Lava builder refuse an illegal field with the same message,
because each of them calls ``QuantizedNetwork.validate()``.
"""

from __future__ import annotations

import pytest

from lava_support import small_network as _small_network


@pytest.mark.parametrize("network_kwargs, message", [
    (dict(bias=10 ** 6), "layer 0: bias[0] = 1000000 is outside -32767..32767"),
    (dict(vdecay=9000), "layer 1: neuron vDecay[0] = 9000 is outside 0..4096"),
])
def test_every_legality_check_is_the_network_description(tmp_path, network_kwargs, message):
    """quantize, the .net reader, the planner and the Lava builder refuse the same field with the
    same message, because each of them calls QuantizedNetwork.validate()."""
    import numpy as np

    from snn_toolchain import constants as C
    from snn_toolchain.export.loihi2_plan import plan_partition
    from snn_toolchain.export.netfile import read_net, write_net
    from snn_toolchain.quantized_network import FIELD_LIMITS, NetworkError

    assert FIELD_LIMITS["delay"].high == C.LOIHI_MAX_DELAY
    assert (FIELD_LIMITS["weight"].low, FIELD_LIMITS["weight"].high) == (C.WEIGHT_MIN, C.WEIGHT_MAX)
    _small_network().validate()
    bad = _small_network(**network_kwargs)
    with pytest.raises(NetworkError, match=message.replace("[", r"\[").replace("]", r"\]")):
        bad.validate()
    path = tmp_path / "bad.net"
    with pytest.raises(NetworkError):
        write_net(bad, path)             # nothing illegal is written
    assert not path.exists()
    from snn_toolchain.netcodec import write_layer
    import h5py

    with h5py.File(path, "w") as f:      # a hand-made file with the illegal value
        f.attrs["time_steps"] = 5
        for index, layer in enumerate(bad.layers):
            write_layer(f.create_group(f"layer/{index}"), layer)
    with pytest.raises(NetworkError) as info:
        read_net(path)
    assert message in str(info.value) and str(path) in str(info.value)
    plan = plan_partition(bad)
    assert not plan.fits and any(message in reason for reason in plan.reasons)
    if "bias" in message:
        from snn_toolchain.fixed_point import quantize_connection

        with pytest.raises(NetworkError, match="bias"):
            quantize_connection("0", np.full((3, 4), 0.5), np.zeros((3, 4)), np.full(3, 1e6))
    from snn_toolchain.lava_models.build import build_lava_network

    with pytest.raises(NetworkError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_lava_network(bad, samples=np.zeros((1, 5, 4)))
