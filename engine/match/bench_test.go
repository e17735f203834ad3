package match

import (
	"bytes"
	"testing"
)

var benchValue = []byte("/var/lib/kubelet/pods/3f1c2b8e-91a4-4c8e-9d7e-0b5f2f7c1a11/volumes/kubernetes.io~secret/token")

func BenchmarkGlobMatch(b *testing.B) {
	g := CompileGlob("/var/lib/kubelet/pods/*/volumes/*secret*/[a-z]*", false)
	b.ReportAllocs()
	for b.Loop() {
		if !g.Match(benchValue) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkIGlobMatch(b *testing.B) {
	g := CompileGlob("*/VOLUMES/*SECRET*", true)
	b.ReportAllocs()
	for b.Loop() {
		if !g.Match(benchValue) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkIContains(b *testing.B) {
	needle := []byte("KUBERNETES.IO~SECRET")
	b.ReportAllocs()
	for b.Loop() {
		if !IContains(benchValue, needle) {
			b.Fatal("not found")
		}
	}
}

func BenchmarkIContainsMiss(b *testing.B) {
	hay := bytes.Repeat([]byte("system:serviceaccount:kube-system:"), 8)
	needle := []byte("Cluster-Admin")
	b.ReportAllocs()
	for b.Loop() {
		if IContains(hay, needle) {
			b.Fatal("found")
		}
	}
}

func BenchmarkPathPrefixSet(b *testing.B) {
	set := NewPathPrefixSet([]string{"/etc", "/usr/lib", "/var/run/docker.sock", "/var/lib/kubelet/pods/*/volumes", "/proc"})
	b.ReportAllocs()
	for b.Loop() {
		if !set.Match(benchValue) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkRegexMatch(b *testing.B) {
	r, err := CompileRegex("/var/lib/kubelet/pods/[0-9a-f-]+/volumes/.*")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !r.Match(benchValue) {
			b.Fatal("no match")
		}
	}
}
