"""Metric names (DESIGN.md, "Metric names"): the one place they are spelled; the collector, the
dashboards and the rules' tests use these."""

ALLOCS = "hakmem_allocs"                      # counter: pid, comm, class
FREES = "hakmem_frees"                        # counter: pid, comm, route
REFILLS = "hakmem_refills"                    # counter: pid, comm, class, stage
REFILL_OBJECTS = "hakmem_refill_objects"      # counter: pid, comm, class
SUPERSLAB_EVENTS = "hakmem_superslab_events"  # counter: pid, comm, event
SUPERSLABS = "hakmem_superslabs"              # gauge: pid, comm, state (live, cached, purged)
LARGE_EVENTS = "hakmem_large_events"          # counter: pid, comm, event
HEAP_ERRORS = "hakmem_heap_errors"            # counter: pid, comm, kind (double_free, invalid_pointer, corrupt_free_list)
SYSCALLS = "hakmem_syscalls"                  # counter: pid, comm, syscall
SYSCALL_BYTES = "hakmem_syscall_bytes"        # counter: pid, comm, syscall
SYSCALL_DURATION = "hakmem_syscall_duration_seconds"  # histogram: pid, comm, syscall
PAGE_FAULTS = "hakmem_page_faults"            # counter: pid, comm
REQUESTED_BYTES = "hakmem_requested_bytes"    # counter: pid, comm
ALLOCATED_BYTES = "hakmem_allocated_bytes"    # counter: pid, comm (class sizes, large mappings)
LIVE_BYTES = "hakmem_live_bytes"              # gauge: pid, comm, class (classes with live blocks only)
MEMORY_BYTES = "hakmem_memory_bytes"          # gauge: pid, comm, layer
MAPPED_BYTES = "hakmem_mapped_bytes"          # gauge: pid, comm (= the sum of the layers)
RESIDENT_ESTIMATE = "hakmem_resident_estimate_bytes"  # gauge: pid, comm
PROCESS_RESIDENT = "hakmem_process_resident_bytes"    # gauge: pid, comm, kind (anon, file, shmem)
REFILL_DURATION = "hakmem_refill_duration_seconds"    # histogram (--detail refill): pid, comm, class, stage
TARGET_INFO = "hakwatch_target_info"          # gauge: pid, comm, library, version, cgroup, hidden_by (grouped: the group's key, library, version)
GROUP_PROCESSES = "hakwatch_group_processes"  # gauge (--group-by): the group's key
TARGETS = "hakwatch_targets"                  # gauge
TARGETS_DROPPED = "hakwatch_targets_dropped"  # counter
SCRAPE_DURATION = "hakwatch_scrape_duration_seconds"  # gauge
BUILD_INFO = "hakwatch_build_info"            # gauge: version, bcc_version, kernel
