package agent

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canonical/pebble/client"

	"github.com/falco-k8s/falco-k8s/agent/config"
)

// startPebble runs the real Pebble daemon (go tool pebble, pinned in go.mod) and returns its
// socket.
func startPebble(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "tool", "-n", "pebble")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go tool -n pebble: %v", err) // part of the module: never skipped
	}
	dir := t.TempDir()
	p := exec.Command(strings.TrimSpace(string(out)), "run", "--hold", "--create-dirs")
	p.Env = append(os.Environ(), "PEBBLE="+dir)
	var logs strings.Builder
	p.Stdout, p.Stderr = &logs, &logs
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }() //nolint:errcheck // exit status irrelevant
	t.Cleanup(func() {
		p.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may be gone
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.Process.Kill() //nolint:errcheck
			<-done
		}
	})
	sock := filepath.Join(dir, ".pebble.socket")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPebbleNotices: an accepted and an ignored candidate each record the custom notice
// falco-k8s.io/ruleset in the real Pebble, with the event, reference, digest and reason; a
// Pebble that is gone does not stop the next candidate from being accepted.
func TestPebbleNotices(t *testing.T) {
	sock := startPebble(t)
	src := &fakeSource{sink: make(chan RuleSink, 1)}
	startAgent(t, []string{"notify.pebble_socket=" + sock}, Options{Sources: []RuleSource{src}})
	sink := <-src.sink
	v2 := []SourceFile{{Name: "k8s_rules.yaml", Content: []byte("- list: l2\n  items: [b]\n"), Ref: "reg/x:1", Digest: "sha256:bb"}}
	c, err := sink.Compile("follower", v2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Accept(c); err != nil {
		t.Fatal(err)
	}
	v3 := []SourceFile{{Name: "k8s_rules.yaml", Content: []byte(invalidRule), Ref: "reg/x:1", Digest: "sha256:cc"}}
	_, err = sink.Compile("follower", v3)
	sink.Ignore("follower", v3, err)

	pc, err := client.New(&client.Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	waitFor(t, func() bool {
		ns, err := pc.Notices(&client.NoticesOptions{Types: []client.NoticeType{client.CustomNotice}, Keys: []string{config.NoticeKey}})
		if err != nil || len(ns) != 1 || ns[0].Occurrences < 2 {
			return false
		}
		got = []map[string]string{ns[0].LastData}
		return true
	})
	// Pebble keeps the last occurrence's data: the ignored candidate.
	last := got[0]
	if last["event"] != "ignored" || last["ref"] != "reg/x:1" || last["digest"] != "sha256:cc" || !strings.Contains(last["reason"], "k8s_rules.yaml:3:") {
		t.Fatalf("last notice data %v", last)
	}

	// Both occurrences, as the charm's hook sees them one by one: wait for the next after the
	// first, so the accepted one is checked too.
	ns, _ := pc.Notices(&client.NoticesOptions{Keys: []string{config.NoticeKey}})
	after := ns[0].LastRepeated
	c, err = sink.Compile("follower", v2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Accept(c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		ns, err := pc.Notices(&client.NoticesOptions{Keys: []string{config.NoticeKey}, After: after})
		if err != nil || len(ns) != 1 {
			return false
		}
		got = append(got, ns[0].LastData)
		return true
	})
	if d := got[len(got)-1]; d["event"] != "accepted" || d["digest"] != "sha256:bb" || d["reason"] != "" {
		t.Fatalf("accepted notice data %v", d)
	}
}

// With no Pebble listening, a candidate is accepted all the same (the failure is only logged).
func TestPebbleNoticeFailureDoesNotBlock(t *testing.T) {
	src := &fakeSource{sink: make(chan RuleSink, 1)}
	ta := startAgent(t, []string{"notify.pebble_socket=" + filepath.Join(t.TempDir(), "gone.socket")}, Options{Sources: []RuleSource{src}})
	sink := <-src.sink
	for i := range 100 { // more than the queue holds
		v := []SourceFile{{Name: "k8s_rules.yaml", Content: []byte("- list: l2\n  items: [b]\n"), Ref: "reg/x:1", Digest: "sha256:bb"}}
		c, err := sink.Compile("follower", v)
		if err != nil {
			t.Fatal(err)
		}
		if gen, err := sink.Accept(c); err != nil || gen != uint64(i+2) {
			t.Fatalf("accept %d: %d, %v", i, gen, err)
		}
	}
	if st := ta.Status(); st.LastAccepted.Digest != "sha256:bb" {
		t.Fatalf("status %+v", st.LastAccepted)
	}
	ta.stop(t) // and shutting down does not wait for the missing Pebble
}
