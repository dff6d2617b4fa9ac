"""What task-model training and alignment search share: the trainer factory, callbacks, progress, metrics
and the handling of signals."""
