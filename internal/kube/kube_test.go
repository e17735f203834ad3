package kube_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/falco-k8s/falco-k8s/internal/kube"
	"github.com/falco-k8s/falco-k8s/internal/kubetest"
)

var cp *kubetest.ControlPlane

// TestMain shares one control plane between the tests; it is started by the first test that
// needs it (so a skipped tier costs nothing) and stopped here.
func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		cp.Stop()
	}
	os.Exit(code)
}

func controlPlane(t *testing.T) (*kube.Client, kubernetes.Interface) {
	t.Helper()
	assets := kubetest.Require(t)
	if cp == nil {
		dir, err := os.MkdirTemp("", "kube-test-")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c, err := kubetest.Start(context.Background(), assets, dir, kubetest.Options{})
		if err != nil {
			t.Fatalf("start control plane: %v", err)
		}
		t.Logf("control plane up in %s", time.Since(start).Round(time.Millisecond))
		cp = c
	}
	c, err := kube.NewFromKubeconfig(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return c, c.Clientset()
}

func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kube-test-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func TestGetSecretKey(t *testing.T) {
	c, cs := controlPlane(t)
	ctx := context.Background()
	ns := namespace(t, cs)
	const value = "user:s3cr3t-value"
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "auth"}, Data: map[string][]byte{"falcoctl": []byte(value)}},
		// stringData is how people write them by hand; the apiserver stores it in data.
		{ObjectMeta: metav1.ObjectMeta{Name: "auth-string"}, StringData: map[string]string{"falcoctl": value}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Data: map[string][]byte{"password": []byte(value)}},
	} {
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	for _, name := range []string{"auth", "auth-string"} {
		got, err := c.GetSecretKey(ctx, ns, name, "falcoctl")
		if err != nil || string(got) != value {
			t.Fatalf("GetSecretKey(%s) = %q, %v", name, got, err)
		}
	}

	_, err := c.GetSecretKey(ctx, ns, "missing", "falcoctl")
	var nf *kube.SecretNotFoundError
	if !errors.As(err, &nf) || err.Error() != "secret missing is expected in namespace "+ns {
		t.Fatalf("missing secret: %T %v", err, err)
	}

	_, err = c.GetSecretKey(ctx, ns, "other", "falcoctl")
	var ke *kube.SecretKeyError
	if !errors.As(err, &ke) || err.Error() != "secret other has no key falcoctl" {
		t.Fatalf("missing key: %T %v", err, err)
	}
	if strings.Contains(err.Error(), value) {
		t.Fatalf("error leaks the secret: %v", err)
	}
}

func TestServiceClusterIPAndPort(t *testing.T) {
	c, cs := controlPlane(t)
	ctx := context.Background()
	ns := namespace(t, cs)
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "falco-k8s"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "falco-k8s"},
			Ports: []corev1.ServicePort{
				{Name: "webhook", Port: 9765},
				{Name: "metrics", Port: 9766},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "headless"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ip, err := c.ServiceClusterIP(ctx, ns, "falco-k8s")
	if err != nil || ip != svc.Spec.ClusterIP || !strings.HasPrefix(ip, "10.0.0.") {
		t.Fatalf("ServiceClusterIP = %q, %v (allocated %q)", ip, err, svc.Spec.ClusterIP)
	}
	if p, err := c.ServicePort(ctx, ns, "falco-k8s", "webhook"); err != nil || p != 9765 {
		t.Fatalf("ServicePort(webhook) = %d, %v", p, err)
	}
	if _, err := c.ServicePort(ctx, ns, "falco-k8s", ""); !errors.Is(err, kube.ErrNoPort) {
		t.Fatalf("ServicePort(\"\") on two ports: %v", err)
	}
	if p, err := c.ServicePort(ctx, ns, "headless", ""); err != nil || p != 80 {
		t.Fatalf("ServicePort(headless) = %d, %v", p, err)
	}
	if _, err := c.ServiceClusterIP(ctx, ns, "headless"); !errors.Is(err, kube.ErrNoClusterIP) {
		t.Fatalf("headless: %v", err)
	}
	_, err = c.ServiceClusterIP(ctx, ns, "nope")
	var nf *kube.ServiceNotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("missing service: %T %v", err, err)
	}
}

func podEvents(t *testing.T, cs kubernetes.Interface, ns, pod string) []corev1.Event {
	t.Helper()
	l, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": pod}.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func createPod(t *testing.T, cs kubernetes.Interface, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "falco", Image: "busybox:1.36"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRecordEvent(t *testing.T) {
	c, cs := controlPlane(t)
	ctx := context.Background()
	ns := namespace(t, cs)
	pod := createPod(t, cs, ns, "falco-k8s-0")

	long := strings.Repeat("é", 2000) // 4000 bytes: must be cut on a rune boundary
	if err := c.RecordEvent(ctx, ns, pod.Name, "ArtifactsAccepted", "rules accepted", kube.EventNormal); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordEvent(ctx, ns, pod.Name, "ArtifactsIgnored", long, kube.EventWarning); err != nil {
		t.Fatal(err)
	}
	evs := podEvents(t, cs, ns, pod.Name)
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2: %+v", len(evs), evs)
	}
	byReason := map[string]corev1.Event{}
	for _, e := range evs {
		byReason[e.Reason] = e
		if e.InvolvedObject.UID != pod.UID || e.InvolvedObject.Kind != "Pod" || e.Source.Component != kube.Component {
			t.Errorf("event %s: involvedObject %+v source %+v", e.Reason, e.InvolvedObject, e.Source)
		}
	}
	if e := byReason["ArtifactsAccepted"]; e.Type != kube.EventNormal || e.Message != "rules accepted" {
		t.Errorf("accepted: %+v", e)
	}
	if e := byReason["ArtifactsIgnored"]; e.Type != kube.EventWarning || len(e.Message) > 1024 || !strings.HasSuffix(e.Message, "...") {
		t.Errorf("ignored: type %s, %d bytes", e.Type, len(e.Message))
	}

	if err := c.RecordEvent(ctx, ns, "no-such-pod", "ArtifactsAccepted", "x", kube.EventNormal); err == nil {
		t.Error("event on a missing pod: no error")
	}
	if err := c.RecordEvent(ctx, ns, pod.Name, "ArtifactsAccepted", "x", "Error"); err == nil {
		t.Error("invalid type: no error")
	}
}

func TestRecorder(t *testing.T) {
	c, cs := controlPlane(t)
	ns := namespace(t, cs)
	pod := createPod(t, cs, ns, "falco-k8s-1")
	var logs bytes.Buffer
	r := kube.NewRecorder(c, ns, pod.Name, 16, zerolog.New(zerolog.SyncWriter(&logs)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for i := range 3 {
		r.Record("ArtifactsAccepted", "generation "+string(rune('1'+i)), kube.EventNormal)
	}
	// Cancelling at once still delivers what was queued (the drain after shutdown).
	cancel()
	<-done
	r.Record("ArtifactsAccepted", "after close", kube.EventNormal) // dropped silently, no panic
	if n := len(podEvents(t, cs, ns, pod.Name)); n != 3 {
		t.Fatalf("got %d events, want 3; logs:\n%s", n, logs.String())
	}

	// A pod that does not exist: failures are logged at warn, Record never blocks.
	var logs2 bytes.Buffer
	r2 := kube.NewRecorder(c, ns, "missing-pod", 1, zerolog.New(zerolog.SyncWriter(&logs2)))
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { r2.Run(ctx2); close(done2) }()
	start := time.Now()
	for range 50 {
		r2.Record("ArtifactsIgnored", "x", kube.EventWarning)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Record blocked for %s", d)
	}
	cancel2()
	<-done2
	if !strings.Contains(logs2.String(), `"level":"warn"`) {
		t.Errorf("no warning logged: %s", logs2.String())
	}
}
