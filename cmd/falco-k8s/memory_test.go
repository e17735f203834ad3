package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/config"
)

// TestMain lets the memory test run this test binary as the agent, a separate process whose
// peak RSS (VmHWM) is its own.
func TestMain(m *testing.M) {
	if args := os.Getenv("FALCO_K8S_TEST_RUN_AGENT"); args != "" {
		os.Args = append([]string{"falco-k8s"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tinyBatch is an EventList of minimal events filling size bytes: the parsed form of such a
// batch costs the most per byte.
func tinyBatch(size int) []byte {
	const ev = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a","stage":"ResponseComplete","verb":"get","stageTimestamp":"2024-05-01T10:00:00.000000Z"}`
	var b bytes.Buffer
	b.WriteString(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[`)
	for n := 0; b.Len()+len(ev)+3 < size; n++ {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ev)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// realisticBatch repeats kube-apiserver 1.31's own audit events (pod creates with their
// request and response objects, reads, RBAC) up to size bytes.
func realisticBatch(t *testing.T, size int) []byte {
	raw, err := os.ReadFile(filepath.Join(sharedDir(t), "testdata", "apiserver-1.31", "audit-batches.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var items [][]byte
	for _, l := range bytes.Split(raw, []byte("\n")) {
		if i := bytes.Index(l, []byte(`"items":[`)); i >= 0 && bytes.HasSuffix(l, []byte("]}")) {
			items = append(items, l[i+len(`"items":[`):len(l)-2])
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`)
	for k := 0; ; k++ {
		it := items[k%len(items)]
		if b.Len()+len(it)+3 >= size {
			break
		}
		if k > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// vmHWM reads a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestPeakRSSFollowsConfiguration posts 8 concurrent 12 MiB batches (the default max_body_size)
// of tiny and of realistic events to an agent process, retrying 429s as kube-apiserver does, and
// checks that its peak RSS stays under the bound the configuration documents
// (Config.MemoryBound: memory_budget + queue.max_bytes + 128 MiB + kept parsers). It logs the
// figures.
//
// FALCO_K8S_RSS_BINARY=/path/to/falco-k8s measures another build (e.g. before a change) instead
// of this one; FALCO_K8S_RSS_NO_BOUND=1 then only reports.
func TestPeakRSSFollowsConfiguration(t *testing.T) {
	if raceEnabled {
		t.Skip("peak RSS under the race detector (5-10x memory) says nothing about the agent")
	}
	if testing.Short() {
		t.Skip("posts 8 x 12 MiB batches per scenario")
	}
	const size = 12 << 20
	tiny, realistic := tinyBatch(size-1), realisticBatch(t, size-1)
	for _, sc := range []struct {
		name      string
		body      []byte
		overrides []string
	}{
		{"tiny events, default limits", tiny, nil},
		{"tiny events, max_events raised", tiny, []string{"webhook.max_events=1000000"}},
		{"realistic events", realistic, nil},
	} {
		t.Run(sc.name, func(t *testing.T) {
			if os.Getenv("FALCO_K8S_RSS_BINARY") != "" && len(sc.overrides) > 0 {
				t.Skip("overrides of this build")
			}
			dir := t.TempDir()
			wh, obs := freePort(t), freePort(t)
			args := []string{"agent", "-o", "webhook.listen=" + wh, "-o", "observability.listen=" + obs,
				"-o", "rules.state_dir=" + dir, "-o", "outputs.stdout.enabled=false", "-o", "log.level=warn"}
			for _, o := range sc.overrides {
				args = append(args, "-o", o)
			}
			cfg, err := config.Parse(nil, append([]string{"rules.state_dir=" + dir}, sc.overrides...))
			if err != nil {
				t.Fatal(err)
			}
			var cmd *exec.Cmd
			if bin := os.Getenv("FALCO_K8S_RSS_BINARY"); bin != "" {
				cmd = exec.Command(bin, args...)
			} else {
				cmd = exec.Command(os.Args[0])
				cmd.Env = append(os.Environ(), "FALCO_K8S_TEST_RUN_AGENT="+strings.Join(args, "\x1f"))
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Signal(os.Interrupt) //nolint:errcheck
				cmd.Wait()                       //nolint:errcheck
			}()
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := http.Get("http://" + obs + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("agent not ready: %v\n%s", err, stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			var mu sync.Mutex
			codes := map[int]int{}
			retries := 0
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for attempt := 0; attempt < 300; attempt++ {
						resp, err := http.Post("http://"+wh+"/k8s-audit", "application/json", bytes.NewReader(sc.body))
						if err != nil {
							t.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body) //nolint:errcheck
						resp.Body.Close()
						if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
							mu.Lock()
							retries++
							mu.Unlock()
							time.Sleep(time.Second) // Retry-After
							continue
						}
						mu.Lock()
						codes[resp.StatusCode]++
						mu.Unlock()
						return
					}
				}()
			}
			wg.Wait()
			// Wait until the queue is evaluated.
			drained := time.Now().Add(2 * time.Minute)
			for time.Now().Before(drained) {
				resp, err := http.Get("http://" + obs + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if bytes.Contains(b, []byte("\nfalco_k8s_queue_events 0\n")) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			peak := vmHWM(t, cmd.Process.Pid)
			bound := cfg.MemoryBound()
			t.Logf("%s: peak RSS %d MiB (bound %d MiB: memory_budget %s + queue.max_bytes %s + 128 MiB + 2 x %d workers x 32 MiB kept parsers); answers %v after %d retries",
				sc.name, peak>>20, bound>>20, cfg.Webhook.MemoryBudget, cfg.Webhook.Queue.MaxBytes, cfg.EvaluationWorkers(), codes, retries)
			if os.Getenv("FALCO_K8S_RSS_NO_BOUND") == "" && peak > bound {
				t.Errorf("peak RSS %d MiB over the documented bound %d MiB", peak>>20, bound>>20)
			}
			if codes[200]+codes[413] != 8 {
				t.Errorf("answers %v, want 8 final answers (200, or 413 for a batch over a limit)", codes)
			}
		})
	}
}
