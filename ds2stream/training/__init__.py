"""Training: shards -> a run directory of checkpoints and metrics. Inference never imports this;
the dev evaluation at an epoch's end runs inference's eval loop.

  ``config``       TrainConfig, the fields that define the batch plan, and Preset (model + defaults);
  ``plan``         the batch plan: make_sampler, make_source, its fingerprint, where a resume goes on;
  ``step``         the compiled step (loss, gradients across ranks, clipping, guarded Adam);
  ``cells``        the step's MindSpore cells and the all-reduce (imported lazily: mindspore is slow to import);
  ``guard``        what a failed step leaves (nothing) and when to roll back;
  ``metrics``      metrics.jsonl and its curves;
  ``distributed``  msrun: joining the cluster, what the ranks share;
  ``trainer``      the run: Trainer (start, resume, fit), run_training.
"""
