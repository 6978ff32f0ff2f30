"""The drafter pipeline: what every drafter that is trained or built for a target goes through.

- ``states``: the target's greedy outputs and hidden states of a log's prompts (and the teacher's
  continuations of mined prompts), kept on disk and read back (atomic per folder, resumable per chunk);
- ``mining``: training prompts beyond a log's, mined from this machine and kept apart from it;
- ``tuning``: frozen setting types (``HeadSetting``, ``StoreSetting``, ``StoreHeadSetting``), the
  replayed counts of a grid of them on validation prompts and the pick;
- ``pricing``: summed counts priced under a cost profile (``decoding.calibrate.speedup_count``),
  per-domain totals of head arms and the break-even step a GPU must beat;
- ``logs``: a priced full-information log holding a source log's arms and the drafter's replayed ones;
- ``models_file``: the models-file entries of heads and stores;
- ``live``: the drafters measured live by the builder, a per-arm x domain table;
- ``heads_run`` and ``stores_run``: the per-domain heads and retrieval stores of the shipped joint log, end to end.
"""
