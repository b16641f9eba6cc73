"""Finding processes and the libhakmem they map, and attaching the BPF program to them."""
