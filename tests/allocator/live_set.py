"""What programs/alloc_live.c holds per unit (K = 1), as the allocator must count it: live bytes by
class (whole blocks of the class serving each request; a large block is its whole mapping: the
request plus a 64-byte header, rounded up to 4 KiB) and the bytes the program asked for. Shared by
the allocator suite and the BPF suite (which checks hakwatch's view of the same program)."""

LARGE_MAPPING = (300000 + 64 + 4095) // 4096 * 4096

LIVE_PER_UNIT = {
    "112": 1000 * 112,          # malloc(100)
    "1024": 300 * 1024,         # malloc(1000)
    "5120": 50 * 5120,          # malloc(5000)
    "large": 4 * LARGE_MAPPING,  # malloc(300000)
    "48": 1000 * 48,            # 2000 x malloc(40) by a thread, half freed by the main thread
    "3072": 200 * 3072,         # malloc(20), then realloc(p, 3000)
}

REQUESTED_PER_UNIT = 1000 * 100 + 300 * 1000 + 50 * 5000 + 4 * 300000 + 2000 * 40 + 200 * (20 + 3000)
