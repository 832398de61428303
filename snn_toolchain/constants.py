"""Constants shared by every part of the toolchain. Define a number here once, import it elsewhere."""

# --- Spiking Heidelberg Digits / Spiking Speech Commands (Cramer et al. 2020) ---
SHD_RAW_CHANNELS = 700          # cochlea channels in the published files (units 0..699)
CHANNELS_PER_BIN = 5            # adjacent raw channels summed into one input channel
INPUT_CHANNELS = SHD_RAW_CHANNELS // CHANNELS_PER_BIN   # 140
TIME_BIN_S = 0.010              # one time step of the model, in seconds (10 ms)
SAMPLE_DURATION_S = 1.0         # the window that is binned, in seconds
TIME_STEPS = int(round(SAMPLE_DURATION_S / TIME_BIN_S))  # 100 steps

# --- NIR readers' and writers' own time steps, in seconds (export/nir_conventions.py) ---
SNNTORCH_DT = 1e-4              # snnTorch's import_from_nir and export_to_nir fix it; its graphs do not say it
NORSE_DT = 1e-3                 # Norse's to_nir and from_nir default

SHD_CLASSES = 20
SSC_CLASSES = 35
GSC_CLASSES = 35

# HDF5 keys of the official SHD/SSC files.
H5_TIMES = "spikes/times"
H5_UNITS = "spikes/units"
H5_LABELS = "labels"
H5_SPEAKER = "extra/speaker"
H5_KEYS = "extra/keys"

SHD_SPLIT_FILES = {"train": "shd_train.h5", "test": "shd_test.h5"}
SSC_SPLIT_FILES = {"train": "ssc_train.h5", "valid": "ssc_valid.h5", "test": "ssc_test.h5"}

# --- Google Speech Commands v0.02 (Warden 2018) ---
GSC_FOLDER_NAME = "speech_commands_v0.02"  # the folder --download extracts the archive into
GSC_SAMPLE_RATE = 16000         # Hz
GSC_N_MELS = 40                 # log-mel filterbank features per step
GSC_HOP_S = 0.010               # feature hop, in seconds (10 ms -> 100 steps per 1 s clip)
GSC_WINDOW_S = 0.025            # analysis window, in seconds

# --- Synaptic delays (in time steps) ---
TRAIN_MAX_DELAY = 25            # the paper's trained delay cap, in steps
LOIHI_MAX_DELAY = 62            # largest delay NetX/Loihi 2 accepts, in steps
# A Lava Dense/DelayDense synapse delivers a spike sent at step r (through delay d) at step r + 1 + d:
# one step of latency per connection (measured, tests/test_deployed.py). The training model runs
# with it too (DelaySNN(latency=...), docs/fixed_point.md "One timing").
SYNAPSE_LATENCY_STEPS = 1

# --- Loihi 2 fixed point (docs/fixed_point.md) ---
DECAY_BITS = 12                 # decays and couplings are fractions of 2^12
DECAY_UNITY = 1 << DECAY_BITS   # 4096 = a decay fraction of 1.0
STATE_BITS = 24                 # u and w are 24-bit signed, saturating
STATE_MAX = (1 << (STATE_BITS - 1)) - 1
ACTIVATION_SHIFT = 6            # synaptic input enters the membrane << 6, as in Lava's LIF
WEIGHT_BITS = 8                 # weight mantissa bits (plus sign) on a Loihi 2 synapse
WEIGHT_MAX = 254                # largest weight integer that Lava's mixed-sign Dense keeps exactly
WEIGHT_MIN = -256
THRESHOLD_MANT_MAX = (1 << 17) - 1   # vThMant is 17 bits
BIAS_MANT_MAX = (1 << 15) - 1        # Lava's LIF stores bias_mant as int16
READOUT_THRESHOLD_MANT = (1 << 18) - 1  # "infinite" threshold of a CUBA readout (as lava-dl exports)
# A layer whose weights are small against the threshold (GSC's first layer, fed 8-bit graded
# payloads) would need a scale S (= vThMant) far above this: its 24-bit membrane would then hold
# only a few thresholds. Such a layer gets an input shift k instead (weights scaled by S * 2^k, the
# synapse's accumulated input shifted right by k, Lava's negative weight exponent), keeping S at
# most SCALE_BEFORE_SHIFT_MAX: 2^12 leaves the membrane +-32 thresholds.
SCALE_BEFORE_SHIFT_MAX = 1 << 12
MAX_INPUT_SHIFT = 8             # Loihi 2 weight exponents reach -8

# --- NetX HDF5 (.net) keys written by export/ and read by lava_models/ ---
NET_FORMAT_NAME = "snn-toolchain-netx"
# 2: a layer may hold inputShift (> 0 changes its arithmetic) and the file an /input group
# 3: an AdLIF layer may hold weightScale and vThMant per neuron, (out,) arrays
NET_FORMAT_VERSION = 3
# root attribute holding the sha256 of the file's content (export/netfile.py: content_checksum)
NET_CHECKSUM_ATTR = "content_sha256"

# --- Time steps per sample ---
# Largest ``time_steps`` a network may have (checked by QuantizedNetwork.validate()). The longest
# time base in use is 100 steps + 62 steps of delay padding = 162; 4096 leaves 25x headroom (41 s of
# input at 10 ms per step). What it bounds is memory: the emulator holds about 15 KB per step per
# sample for a 140-128-128-20 network (measured: 1 GB for 16 samples x 4000 steps), so 4096 steps
# cost 60 MB per sample (16 GB for its default batch of 256); at 10^7 steps it asked for 44.8 GB
# and died in a traceback, and Lava was killed for lack of memory.
MAX_TIME_STEPS = 4096

# --- Sharded parity (train-export parity --cluster) ---
# Test samples per shard when --shards is not given: at 0.33 s a sample on Lava's CPU simulator
# (SHD preset; about 3 s at hidden 512) a shard takes 15-150 s, long beside a Ray task's ~1 ms
# round trip and its data load, short enough that a lost worker costs little.
PARITY_SAMPLES_PER_SHARD = 50
