# Timestamps with Z and numeric offsets: ordering, dates and durations.
package corpus.time_offsets

start := time.parse_rfc3339_ns(input.start)

end := time.parse_rfc3339_ns(input.end)

ordered if start < end

duration_h := (end - start) / 3600000000000

date := time.date(start)

end_date := time.date([end, "UTC"])

day := time.weekday(end)

next_week := time.add_date(start, 0, 0, 7)

ttl_ns := time.parse_duration_ns(input.ttl)

expires := start + ttl_ns

expired if expires < end

diff := time.diff(start, end)
