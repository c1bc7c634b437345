// Command loadgen sends HTTP requests at a constant rate (wrk2-style) and prints
// latency percentiles as JSON on stdout.
//
// Debian's wrk has no constant-rate mode (-R is wrk2's), so this is the
// fixed-rate generator of the Statelock benchmark. Request i is due at
// start + i/rate. A pool of keep-alive connections (one worker goroutine each)
// takes the next due slot, waits for its time and sends it.
//
// Coordinated omission: when every connection was busy and a request is sent
// after its due time, its latency counts from the due time (as wrk2 does), so a
// server stall shows up in the percentiles instead of silently lowering the
// rate. When a worker was idle and merely woke late from its timer (scheduler
// slack of the load generator itself, ~0.1-1 ms on a small VM), latency counts
// from the actual send: that delay is the load generator's, not the server's.
// Both views are reported: "corrected" (the one to read) and "service" (send to
// last byte, never corrected).
//
// Only the standard library is used: `go build` needs no module download.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type sample struct {
	corrected time.Duration
	service   time.Duration
	status    int
	late      bool
}

type percentiles map[string]float64

func summarise(d []time.Duration) percentiles {
	out := percentiles{}
	if len(d) == 0 {
		return out
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return math.Round(float64(x.Nanoseconds())/1e3) / 1e3 }
	at := func(p float64) time.Duration {
		idx := int(math.Ceil(p/100*float64(len(d)))) - 1
		if idx < 0 {
			idx = 0
		}
		if idx >= len(d) {
			idx = len(d) - 1
		}
		return d[idx]
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	for _, p := range []float64{50, 75, 90, 99, 99.9} {
		out[fmt.Sprintf("p%g", p)] = ms(at(p))
	}
	out["min"] = ms(d[0])
	out["max"] = ms(d[len(d)-1])
	out["mean"] = ms(sum / time.Duration(len(d)))
	return out
}

func main() {
	var headers headerList
	base := flag.String("url", "http://127.0.0.1:8080", "base URL (scheme://host:port)")
	method := flag.String("method", "GET", "HTTP method")
	pathTpl := flag.String("path", "/v2.1/servers/{id}", "path template; {id} is replaced")
	idsArg := flag.String("ids", "", "comma-separated instance ids, used round-robin")
	body := flag.String("body", "", "request body (POST)")
	rate := flag.Float64("rate", 100, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "unmeasured warm-up at the same rate")
	conns := flag.Int("conns", 32, "connections (concurrent requests at most)")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	flag.Var(&headers, "H", "header 'Name: value' (repeatable)")
	flag.Parse()

	ids := strings.Split(*idsArg, ",")
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = *base + strings.ReplaceAll(*pathTpl, "{id}", id)
	}
	hdr := http.Header{}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "bad header %q\n", h)
			os.Exit(2)
		}
		hdr.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        *conns,
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		DisableCompression:  true,
		IdleConnTimeout:     90 * time.Second,
	}
	client := &http.Client{Transport: transport, Timeout: *timeout}
	bodyBytes := []byte(*body)

	interval := time.Duration(float64(time.Second) / *rate)
	total := int64((*warmup + *duration) / interval)
	warmSlots := int64(*warmup / interval)
	start := time.Now().Add(50 * time.Millisecond)
	var next int64 = -1
	var errors int64
	results := make([][]sample, *conns)
	var wg sync.WaitGroup
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]sample, 0, int(total) / *conns + 16)
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= total {
					break
				}
				due := start.Add(time.Duration(i) * interval)
				now := time.Now()
				late := !now.Before(due)
				if !late {
					time.Sleep(due.Sub(now))
				}
				sent := time.Now()
				req, _ := http.NewRequest(*method, paths[int(i)%len(paths)], bytes.NewReader(bodyBytes))
				req.Header = hdr.Clone()
				if len(bodyBytes) > 0 {
					req.ContentLength = int64(len(bodyBytes))
				}
				resp, err := client.Do(req)
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				end := time.Now()
				if i < warmSlots {
					continue
				}
				if err != nil {
					atomic.AddInt64(&errors, 1)
				}
				from := sent
				if late {
					from = due
				}
				local = append(local, sample{end.Sub(from), end.Sub(sent), status, late})
			}
			results[w] = local
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start.Add(*warmup))

	var corrected, service []time.Duration
	statuses := map[string]int{}
	lateCount := 0
	for _, rs := range results {
		for _, s := range rs {
			corrected = append(corrected, s.corrected)
			service = append(service, s.service)
			statuses[fmt.Sprint(s.status)]++
			if s.late {
				lateCount++
			}
		}
	}
	out := map[string]any{
		"rate_target":   *rate,
		"rate_achieved": math.Round(float64(len(corrected))/elapsed.Seconds()*10) / 10,
		"requests":      len(corrected),
		"errors":        errors,
		"statuses":      statuses,
		"late_sends":    lateCount,
		"conns":         *conns,
		"duration_s":    duration.Seconds(),
		"corrected_ms":  summarise(corrected),
		"service_ms":    summarise(service),
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(1)
	}
}
