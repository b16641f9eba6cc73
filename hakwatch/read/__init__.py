"""From the kernel's maps and the processes' memory to each process's counts, gauges and groups."""
