"""The worker level ladder: 0 entry .. 3 expert, from thresholds over measured history."""
