"""The lecture's claims, reproduced: one command each, writing JSON and a PNG into its workdir.

=======================  ===============================================================
module                   claim (source)
=======================  ===============================================================
``elman_xor``            the error dips at every third bit of temporal XOR, from hidden units
                         that code runs and alternations, not the phase (Elman 1990)
``vanishing_gradients``  ``||dh_T/dh_k||`` decays exponentially for a plain RNN with
                         ``sigma_max(W_h) < 1``; gates keep it alive (Pascanu et al. 2013)
``adding``,             adding and copy-memory problems: the plain RNN stays at the
``copy_memory``          memoryless baseline at long delays, LSTM/GRU beat it (Arjovsky
                         et al. 2016); shared code in ``long_range_memory``
``gated_vs_plain``       gated cells beat the tanh RNN at equal parameter counts, GRU and
                         LSTM are close (Chung et al. 2014); the n-gram floor beside them
``long_context``         an LSTM's per-token loss plateaus after <100 tokens, a Transformer's
                         keeps falling; Transformers use parameters better (Kaplan et al.
                         2020), on Python source with count-model cache baselines
``sliding_window``       past its context a GPT slides its window; what each sliding rule
                         costs in loss against nanoGPT's crop
=======================  ===============================================================

Every command takes ``--workdir`` and ``--budget``: ``cpu`` (minutes on a 2-core CPU, the
default), ``gpu`` (the longer runs the papers' results need) or ``tiny`` (seconds, for the
tests). Training runs live in sub-folders of the workdir and resume like any
``experiments.train`` run, so a rerun only redraws the figure. The committed figures and
their numbers are in ``docs/reproductions.md``.
"""
