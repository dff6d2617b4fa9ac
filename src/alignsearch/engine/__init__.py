"""What task-model training and alignment search share: the trainer factory, callbacks, metrics and the
handling of signals."""
