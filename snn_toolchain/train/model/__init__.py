"""The trainable network and its deployed twin: SLAYER-style blocks (``adlif_blocks.py``: synapse,
then neuron, then dropout), the network stacked from them (``delay_snn.py``) and its evaluation in
training (``model_evaluation.py``); the learnable delays
(``synapse.py``, ``delay_taps.py``, ``event_delay.py``), the neuron recurrence on the CPU and GPU
(``recurrence.py``, ``gpu_recurrence.py`` with its Triton kernels in ``gpu_recurrence_kernels.py``),
Loihi 2's arithmetic in torch (``deployed.py``), the model's own quantization (``quantize.py``), the
model as a backend (``float_backend.py``) and loading a trained model without the training loop
(``checkpoint.py``)."""
