"""The commands beside attach and run: top and snapshot, doctor, profile, probes."""
