"""Profiles: the samples and event stacks the BPF program keeps, their symbols, and pprof's format."""
