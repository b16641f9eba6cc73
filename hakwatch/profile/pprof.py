"""A profile (hakwatch/profile/profiles.py) in the formats people read them with:

  pprof    gzip-compressed protobuf of pprof's profile.proto (go tool pprof, Pyroscope, Grafana, Parca),
           encoded by the protobuf library with the module protoc generates from pprof's own
           profile.proto (hakwatch/profile/profile_pb2.py, made by set-up from Debian's copy of it)
  folded   one line per stack, root first, `;` between frames, then its value: flame graph tools'
           input (flamegraph.pl, inferno, speedscope)
"""

import gzip

from hakwatch.errors import HakwatchError
from hakwatch.profile.profiles import Profile

FORMATS = ("pprof", "folded")


def load_profile_proto():
    try:
        from hakwatch.profile import profile_pb2
    except ImportError as e:
        raise HakwatchError(f"cannot write pprof profiles ({e}): run `make setup`, which generates "
                            "hakwatch/profile/profile_pb2.py from pprof's profile.proto with protoc") from None
    return profile_pb2


def to_pprof(p: Profile) -> bytes:
    pb = load_profile_proto()
    out = pb.Profile()
    strings: dict[str, int] = {}

    def s(text: str) -> int:
        if text not in strings:
            strings[text] = len(strings)
            out.string_table.append(text)
        return strings[text]

    s("")  # string_table[0] is always ""
    for kind, unit in p.sample_types:
        out.sample_type.add(type=s(kind), unit=s(unit))
    mapping_ids = {}
    for i, m in enumerate(p.mappings, 1):
        mapping_ids[m] = i
        out.mapping.add(id=i, memory_start=m.start, memory_limit=m.limit, file_offset=m.offset,
                        filename=s(m.path), has_functions=True)
    function_ids: dict[str, int] = {}
    location_ids: dict[tuple, int] = {}  # by mapping, address and name: merged processes share no address space
    for frames, values, labels in p.samples:
        ids = []
        for f in frames:
            where = (f.mapping, f.address, f.function)
            if where not in location_ids:
                if f.function not in function_ids:
                    function_ids[f.function] = len(function_ids) + 1
                    out.function.add(id=function_ids[f.function], name=s(f.function), system_name=s(f.function))
                location_ids[where] = len(location_ids) + 1
                loc = out.location.add(id=location_ids[where], address=f.address,
                                       mapping_id=mapping_ids.get(f.mapping, 0))
                loc.line.add(function_id=function_ids[f.function])
            ids.append(location_ids[where])
        sample = out.sample.add(location_id=ids, value=list(values))
        for key, value in labels.items():
            sample.label.add(key=s(key), str=s(value))
    # The values are estimates already (a sample's weight): no period to scale them by.
    out.period_type.type, out.period_type.unit = (s("events"), s("count")) if p.kind == "churn" else (s("space"), s("bytes"))
    out.time_nanos, out.duration_nanos = p.start_ns, p.duration_ns
    out.default_sample_type = s(p.sample_types[1][0] if p.kind != "churn" else p.sample_types[0][0])
    for text in p.comments:
        out.comment.append(s(text))
    return gzip.compress(out.SerializeToString())


def to_folded(p: Profile) -> str:
    """Bytes by stack (alloc, inuse), events by event and stack (churn: the event as the root)."""
    value = 0 if p.kind == "churn" else 1
    totals: dict[str, int] = {}
    for frames, values, labels in p.samples:
        path = [labels["event"]] if "event" in labels else []
        line = ";".join(path + [f.function.replace(";", ":").replace(" ", "_") for f in reversed(frames)])
        totals[line] = totals.get(line, 0) + values[value]
    return "".join(f"{line} {n}\n" for line, n in sorted(totals.items()) if n)


def write(p: Profile, fmt: str) -> bytes:
    return to_pprof(p) if fmt == "pprof" else to_folded(p).encode()
