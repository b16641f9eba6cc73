"""hakwatch: watch the hakmem allocator and the memory syscalls it causes with eBPF."""

__version__ = "0.1.0"
