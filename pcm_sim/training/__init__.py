"""Training: software / hardware-aware training loops, checkpoints, hardware in the loop."""
