"""Metric names (DESIGN.md): the one place they are spelled; the collector and the dashboards use these."""

ALLOCS = "hakmem_allocs"                      # counter: pid, comm, class
FREES = "hakmem_frees"                        # counter: pid, comm, route
REFILLS = "hakmem_refills"                    # counter: pid, comm, class, stage
REFILL_OBJECTS = "hakmem_refill_objects"      # counter: pid, comm, class
SUPERSLAB_EVENTS = "hakmem_superslab_events"  # counter: pid, comm, event
SUPERSLABS = "hakmem_superslabs"              # gauge: pid, comm, state
LARGE_EVENTS = "hakmem_large_events"          # counter: pid, comm, event
SYSCALLS = "hakmem_syscalls"                  # counter: pid, comm, syscall
SYSCALL_BYTES = "hakmem_syscall_bytes"        # counter: pid, comm, syscall
SYSCALL_DURATION = "hakmem_syscall_duration_seconds"  # histogram: pid, comm, syscall
PAGE_FAULTS = "hakmem_page_faults"            # counter: pid, comm
REFILL_DURATION = "hakmem_refill_duration_seconds"    # histogram (--detail refill): pid, comm, class, stage
TARGET_INFO = "hakwatch_target_info"          # gauge: pid, comm, library, version
TARGETS = "hakwatch_targets"                  # gauge
TARGETS_DROPPED = "hakwatch_targets_dropped"  # counter
SCRAPE_DURATION = "hakwatch_scrape_duration_seconds"  # gauge
BUILD_INFO = "hakwatch_build_info"            # gauge: version, bcc_version, kernel
