package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// Stage names as the audit log writes them.
const (
	StageResponseStarted  = "ResponseStarted"
	StageResponseComplete = "ResponseComplete"
)

// connectSubresources are the pod subresources kube-apiserver admits as CONNECT and logs, once
// the connection is upgraded, with a ResponseStarted and a ResponseComplete event (code 101).
// The proxy subresources (pods, services, nodes) are CONNECTs too, logged as long-running
// requests with code 200.
var connectSubresources = map[string]bool{"exec": true, "attach": true, "portforward": true}

// auditEvent is the audit.k8s.io/v1 Event kube-apiserver would log, in its key order, plus
// oldObject (not an audit field: only rules written for admission can read it, through
// jevt.value[/oldObject/...]).
type auditEvent struct {
	Kind                     string            `json:"kind"`
	APIVersion               string            `json:"apiVersion"`
	Level                    string            `json:"level"`
	AuditID                  string            `json:"auditID"`
	Stage                    string            `json:"stage"`
	RequestURI               string            `json:"requestURI"`
	Verb                     string            `json:"verb"`
	User                     auditUser         `json:"user"`
	ObjectRef                objectRef         `json:"objectRef"`
	ResponseStatus           responseStatus    `json:"responseStatus"`
	RequestObject            json.RawMessage   `json:"requestObject,omitempty"`
	ResponseObject           json.RawMessage   `json:"responseObject,omitempty"`
	OldObject                json.RawMessage   `json:"oldObject,omitempty"`
	RequestReceivedTimestamp string            `json:"requestReceivedTimestamp"`
	StageTimestamp           string            `json:"stageTimestamp"`
	Annotations              map[string]string `json:"annotations"`
}

type auditUser struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

type objectRef struct {
	Resource    string `json:"resource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	APIGroup    string `json:"apiGroup,omitempty"`
	APIVersion  string `json:"apiVersion,omitempty"`
	Subresource string `json:"subresource,omitempty"`
}

type responseStatus struct {
	Metadata struct{} `json:"metadata"`
	Code     int      `json:"code"`
}

// Event is one audit event derived from an admission request.
type Event struct {
	Stage string
	JSON  []byte
}

// Events converts an admission request into the audit events kube-apiserver would log if the
// request succeeded (see the package documentation for the mapping): one ResponseComplete event,
// or for a CONNECT a ResponseStarted and a ResponseComplete event. now stamps the events.
func Events(req *admissionv1.AdmissionRequest, now time.Time) ([]Event, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: no request", ErrInvalidReview)
	}
	gvr, sub := req.Resource, req.SubResource
	if req.RequestResource != nil {
		gvr, sub = *req.RequestResource, req.RequestSubResource
	}
	if gvr.Resource == "" {
		return nil, fmt.Errorf("%w: request.resource.resource is empty", ErrInvalidReview)
	}
	ev := auditEvent{
		Kind: "Event", APIVersion: "audit.k8s.io/v1", Level: "RequestResponse", AuditID: string(req.UID),
		User: auditUser{Username: req.UserInfo.Username, UID: req.UserInfo.UID, Groups: req.UserInfo.Groups},
		ObjectRef: objectRef{Resource: gvr.Resource, Namespace: req.Namespace, Name: req.Name,
			APIGroup: gvr.Group, APIVersion: gvr.Version, Subresource: sub},
		// The request reached admission, so it was authorized; the reason is not passed on.
		Annotations: map[string]string{"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
	}
	if len(req.UserInfo.Extra) > 0 {
		ev.User.Extra = make(map[string][]string, len(req.UserInfo.Extra))
		for k, v := range req.UserInfo.Extra {
			ev.User.Extra[k] = v
		}
	}
	ts := now.UTC().Format("2006-01-02T15:04:05.000000Z")
	ev.RequestReceivedTimestamp, ev.StageTimestamp = ts, ts
	obj, old := raw(req.Object.Raw), raw(req.OldObject.Raw)
	query := url.Values{}
	withName, proxyPath := true, ""
	switch req.Operation {
	case admissionv1.Create:
		// POST to the collection (or to an object's subresource, e.g. pods/eviction): a new
		// object's name is in the body, not the URI. The validating phase
		// sees the object as it will be stored (defaulted, mutated, name generated), which is
		// what the response returns.
		ev.Verb, ev.ResponseStatus.Code, withName = "create", 201, sub != ""
		ev.RequestObject, ev.ResponseObject = obj, obj
	case admissionv1.Update:
		// PATCH and PUT both arrive as UPDATE with the resulting object.
		ev.Verb, ev.ResponseStatus.Code = "update", 200
		ev.RequestObject, ev.ResponseObject, ev.OldObject = obj, obj, old
	case admissionv1.Delete:
		ev.Verb, ev.ResponseStatus.Code = "delete", 200
		ev.RequestObject, ev.ResponseObject, ev.OldObject = raw(req.Options.Raw), old, old
	case admissionv1.Connect:
		// kubectl's POST (SPDY) is logged as create; the options object becomes the query
		// (its path, for proxy, the end of the URI).
		ev.Verb, ev.ResponseStatus.Code = "create", 200
		if connectSubresources[sub] {
			ev.ResponseStatus.Code = 101
		}
		if err := optionsQuery(obj, query, &proxyPath); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown operation %q: want CREATE, UPDATE, DELETE or CONNECT", ErrInvalidReview, req.Operation)
	}
	// No dryRun=All in the URI: a dry run is decided as the real request would be (rules that
	// skip dry runs would otherwise let every preview pass) and recorded as a dry run.
	ev.RequestURI = requestURI(gvr.Group, gvr.Version, gvr.Resource, req.Namespace, req.Name, sub, withName, proxyPath, query)
	stages := []string{StageResponseComplete}
	if req.Operation == admissionv1.Connect {
		stages = []string{StageResponseStarted, StageResponseComplete}
	}
	out := make([]Event, 0, len(stages))
	for _, st := range stages {
		ev.Stage = st
		b, err := json.Marshal(&ev)
		if err != nil {
			return nil, fmt.Errorf("%w: object is not valid JSON: %v", ErrInvalidReview, err)
		}
		out = append(out, Event{Stage: st, JSON: b})
	}
	return out, nil
}

// raw drops an absent or null object.
func raw(b []byte) json.RawMessage {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil
	}
	return b
}

// optionsQuery turns a CONNECT options object (PodExecOptions, PodAttachOptions,
// PodPortForwardOptions) into the query parameters the client sent: lists repeat the key, false
// and empty values are omitted, as client-go's parameter codec does.
func optionsQuery(obj []byte, q url.Values, path *string) error {
	if obj == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(obj, &m); err != nil {
		return fmt.Errorf("%w: CONNECT options object: %v", ErrInvalidReview, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k == "path" {
			*path, _ = m[k].(string)
			continue
		}
		if k != "kind" && k != "apiVersion" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals, _ := m[k].([]any)
		if vals == nil {
			vals = []any{m[k]}
		}
		for _, v := range vals {
			if s, ok := scalar(v); ok {
				q.Add(k, s)
			}
		}
	}
	return nil
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, x != ""
	case bool:
		return "true", x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// requestURI rebuilds the URI the client called. CREATE posts to the collection.
func requestURI(group, version, resource, ns, name, sub string, withName bool, path string, q url.Values) string {
	var b strings.Builder
	if group == "" {
		b.WriteString("/api/" + version)
	} else {
		b.WriteString("/apis/" + group + "/" + version)
	}
	if group == "" && resource == "namespaces" {
		b.WriteString("/namespaces")
		if withName && name != "" {
			b.WriteString("/" + url.PathEscape(name))
		}
	} else {
		if ns != "" {
			b.WriteString("/namespaces/" + url.PathEscape(ns))
		}
		b.WriteString("/" + resource)
		if withName && name != "" {
			b.WriteString("/" + url.PathEscape(name))
		}
	}
	if sub != "" {
		b.WriteString("/" + sub)
	}
	if path != "" {
		if !strings.HasPrefix(path, "/") {
			b.WriteByte('/')
		}
		b.WriteString(path)
	}
	if len(q) > 0 {
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}
