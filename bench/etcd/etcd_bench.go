// etcd_bench: the reference side of chainscale's benchmarks, run against Debian's
// etcd-server in the same run as chainscale's numbers. Each client is its own
// clientv3.Client, so each has its own connection, as chainscale's clients do.
//
//	etcd_bench -endpoint 127.0.0.1:2379 -mode put -clients 8 -duration 10s
//	etcd_bench -endpoint 127.0.0.1:2379 -mode watch -watchers 100 -updates 200
//	etcd_bench -endpoint 127.0.0.1:2379 -mode get -duration 10s
//
// Prints one JSON object on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
)

func connect(endpoint string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	return c
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func summary(latenciesMs []float64) (float64, float64, float64) {
	sort.Float64s(latenciesMs)
	return percentile(latenciesMs, 0.50), percentile(latenciesMs, 0.99), percentile(latenciesMs, 1.0)
}

func emit(v map[string]interface{}) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

// put: `clients` connections each put to their own key back to back for `duration`.
// etcd syncs its WAL before answering a put, as chainscale fsyncs a commit.
func put(endpoint string, clients int, duration time.Duration, valueBytes int) {
	conns := make([]*clientv3.Client, clients)
	for i := range conns {
		conns[i] = connect(endpoint)
		if _, err := conns[i].Put(context.Background(), fmt.Sprintf("/bench/warm/%d", i), "x"); err != nil {
			fmt.Fprintln(os.Stderr, "put:", err)
			os.Exit(1)
		}
	}
	value := string(make([]byte, valueBytes))
	var mu sync.Mutex
	var all []float64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(duration)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var mine []float64
			key := fmt.Sprintf("/bench/put/%d", i)
			for time.Now().Before(deadline) {
				t := time.Now()
				if _, err := conns[i].Put(context.Background(), key, value); err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(1)
				}
				mine = append(mine, float64(time.Since(t).Microseconds())/1000)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	n := len(all)
	p50, p99, max := summary(all)
	emit(map[string]interface{}{"mode": "put", "clients": clients, "ops": n, "seconds": elapsed,
		"ops_per_s": float64(n) / elapsed, "p50_ms": p50, "p99_ms": p99, "max_ms": max})
	for _, c := range conns {
		c.Close()
	}
}

// watch: `watchers` connections watch one key; one more connection puts it `updates`
// times, one at a time, and each latency runs from the put's start until the last
// watcher has received that put.
func watch(endpoint string, watchers, updates int) {
	writer := connect(endpoint)
	key := fmt.Sprintf("/bench/watch/%d", time.Now().UnixNano())
	received := make(chan int64, watchers*updates+watchers)
	ctx, cancel := context.WithCancel(context.Background())
	conns := make([]*clientv3.Client, watchers)
	var ready sync.WaitGroup
	for i := range conns {
		conns[i] = connect(endpoint)
		ready.Add(1)
		go func(c *clientv3.Client) {
			ch := c.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithCreatedNotify())
			first := true
			for resp := range ch {
				if first && resp.Created {
					ready.Done()
					first = false
					continue
				}
				for _, ev := range resp.Events {
					received <- ev.Kv.ModRevision
				}
			}
		}(conns[i])
	}
	ready.Wait()
	var latencies []float64
	for u := 0; u < updates; u++ {
		t := time.Now()
		resp, err := writer.Put(context.Background(), key, fmt.Sprint(u))
		if err != nil {
			fmt.Fprintln(os.Stderr, "put:", err)
			os.Exit(1)
		}
		for got := 0; got < watchers; {
			if rev := <-received; rev == resp.Header.Revision {
				got++
			}
		}
		latencies = append(latencies, float64(time.Since(t).Microseconds())/1000)
	}
	cancel()
	p50, p99, max := summary(latencies)
	emit(map[string]interface{}{"mode": "watch", "watchers": watchers, "updates": updates,
		"p50_ms": p50, "p99_ms": p99, "max_ms": max})
	for _, c := range conns {
		c.Close()
	}
	writer.Close()
}

// get: one connection gets one key back to back for `duration`; a stall is a get above
// 20 ms.
func get(endpoint string, duration time.Duration) {
	c := connect(endpoint)
	if _, err := c.Put(context.Background(), "/bench/get", "x"); err != nil {
		fmt.Fprintln(os.Stderr, "put:", err)
		os.Exit(1)
	}
	var latencies []float64
	stalls := 0
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) {
		t := time.Now()
		if _, err := c.Get(context.Background(), "/bench/get"); err != nil {
			fmt.Fprintln(os.Stderr, "get:", err)
			os.Exit(1)
		}
		ms := float64(time.Since(t).Microseconds()) / 1000
		if ms > 20 {
			stalls++
		}
		latencies = append(latencies, ms)
	}
	n := len(latencies)
	p50, p99, max := summary(latencies)
	emit(map[string]interface{}{"mode": "get", "count": n, "p50_ms": p50, "p99_ms": p99,
		"max_ms": max, "stalls_over_20ms": stalls})
	c.Close()
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd client URL host:port")
	mode := flag.String("mode", "put", "put, watch or get")
	clients := flag.Int("clients", 1, "put: concurrent clients, one connection each")
	duration := flag.Duration("duration", 10*time.Second, "put, get: how long to run")
	valueBytes := flag.Int("value_bytes", 64, "put: bytes per value")
	watchers := flag.Int("watchers", 1, "watch: watchers, one connection each")
	updates := flag.Int("updates", 200, "watch: puts to time")
	flag.Parse()
	switch *mode {
	case "put":
		put(*endpoint, *clients, *duration, *valueBytes)
	case "watch":
		watch(*endpoint, *watchers, *updates)
	case "get":
		get(*endpoint, *duration)
	default:
		fmt.Fprintln(os.Stderr, "unknown -mode", *mode)
		os.Exit(2)
	}
}
