# Changes are allowed only inside a declared maintenance window (RFC 3339 times, any offset).
package corpus.maintenance_window

windows := [
	{"name": "weekly", "start": "2026-03-07T22:00:00Z", "end": "2026-03-08T02:00:00Z"},
	{"name": "paris", "start": "2026-03-10T01:00:00+02:00", "end": "2026-03-10T03:30:00+02:00"},
	{"name": "west", "start": "2026-03-12T18:00:00-07:00", "end": "2026-03-12T23:59:59.999999999-07:00"},
]

now_ns := time.parse_rfc3339_ns(input.now)

open_windows contains w.name if {
	some w in windows
	time.parse_rfc3339_ns(w.start) <= now_ns
	now_ns < time.parse_rfc3339_ns(w.end)
}

default allow := false

allow if input.change.emergency == true

allow if count(open_windows) > 0

weekday := time.weekday(now_ns)

clock := time.clock(now_ns)
