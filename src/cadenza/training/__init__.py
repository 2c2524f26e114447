"""Training: the loop (trainer: ``train``), fine-tuning a trained run, the time budget and
learning-rate schedule, stopping on a signal, the weight average, several processes, the loss plot.
"""
