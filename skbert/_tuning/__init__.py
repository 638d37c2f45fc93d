"""Fine-tuning the encoder on labels: objectives, the training loop and the
memo that tunes once per fold.
"""
