package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestServingCertificateReload: the serving certificate is replaced on disk and SIGHUP's reload
// swaps it in behind the listener: new connections get the new certificate, a connection opened
// before keeps working, and connections made all along never fail (the listener never went
// down). A bad replacement keeps the current certificate.
func TestServingCertificateReload(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := tlsFiles(t, dir)
	ta := startAgent(t, []string{"webhook.tls.cert_file=" + cert, "webhook.tls.key_file=" + key}, Options{})
	addr := ta.WebhookAddr().String()
	served := func() []byte {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // compares raw certificates
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	onDisk := func(path string) []byte {
		b, _ := os.ReadFile(path)
		p, _ := pem.Decode(b)
		return p.Bytes
	}
	if !bytes.Equal(served(), onDisk(cert)) {
		t.Fatal("not serving the configured certificate")
	}
	keep := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test client
	get := func() error {
		resp, err := keep.Get(ta.url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}

	// New connections all along the rotation.
	var failures, dials atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // liveness only
			dials.Add(1)
			if err != nil {
				failures.Add(1)
				continue
			}
			c.Close()
		}
	}()

	newDir := t.TempDir()
	cert2, key2, _ := tlsFiles(t, newDir)
	for _, f := range [][2]string{{cert2, cert}, {key2, key}} {
		b, _ := os.ReadFile(f[0])
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ta.HUP(context.Background())
	if !bytes.Equal(served(), onDisk(cert2)) {
		t.Fatal("a new connection after the reload does not get the new certificate")
	}
	if err := get(); err != nil {
		t.Fatalf("connection opened before the reload: %v", err)
	}

	// A broken replacement: the running certificate stays.
	os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("not a certificate"), 0o600)
	ta.HUP(context.Background())
	if !bytes.Equal(served(), onDisk(cert2)) {
		t.Fatal("a bad certificate file replaced the running one")
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || dials.Load() == 0 {
		t.Fatalf("%d of %d connections failed during the rotation", failures.Load(), dials.Load())
	}
}
