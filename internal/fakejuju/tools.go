package fakejuju

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// Tools lists the hook tools the fake implements; the harness symlinks each to the binary.
var Tools = []string{"config-get", "status-set", "status-get", "action-get", "action-set", "action-fail",
	"action-log", "juju-log", "is-leader", "open-port", "close-port", "opened-ports",
	"application-version-set", "secret-get", "relation-ids", "relation-list", "relation-get", "relation-set",
	"network-get", "secret-add", "secret-set", "secret-info-get"}

// usageError is a command-line error: Juju's tools exit 2 for those, 1 for failures.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// flags is a minimal gnuflag-style parser: --name=value, --name value, -x value, boolean
// --name / --name=true, and "--" ending the flags.
type flags struct {
	bools   map[string]bool   // accepted boolean flags (long and short names)
	strs    map[string]string // accepted string flags → canonical name
	set     map[string]string
	posArgs []string
}

func parse(args []string, bools []string, strs map[string]string) (*flags, error) {
	f := &flags{bools: map[string]bool{}, strs: strs, set: map[string]string{}}
	for _, b := range bools {
		f.bools[b] = true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			f.posArgs = append(f.posArgs, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			f.posArgs = append(f.posArgs, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case f.bools[name]:
			if !hasVal {
				val = "true"
			}
			b, err := strconv.ParseBool(val)
			if err != nil {
				return nil, usagef("invalid boolean value %q for flag %s", val, a)
			}
			f.set[name] = strconv.FormatBool(b)
		case f.strs[name] != "":
			if !hasVal {
				if i+1 >= len(args) {
					return nil, usagef("flag needs an argument: %s", a)
				}
				i++
				val = args[i]
			}
			f.set[f.strs[name]] = val
		default:
			return nil, usagef("flag provided but not defined: %s", a)
		}
	}
	return f, nil
}

func (f *flags) on(name string) bool { return f.set[name] == "true" }

// atMost refuses positional arguments beyond the first n, in Juju's words.
// parseFormatted is parse for the tools that print (--format), checked in Juju's order: flags,
// then the format's value, then surplus positional arguments beyond maxPos.
func parseFormatted(args []string, bools []string, strs map[string]string, maxPos int) (*flags, string, error) {
	f, err := parse(args, bools, strs)
	if err != nil {
		return nil, "", err
	}
	fm, err := f.format(formats...)
	if err != nil {
		return nil, "", err
	}
	if err := f.atMost(maxPos); err != nil {
		return nil, "", err
	}
	return f, fm, nil
}

func (f *flags) atMost(n int) error {
	if len(f.posArgs) > n {
		return usagef("unrecognized args: %q", f.posArgs[n:])
	}
	return nil
}

// format checks --format against the formats a tool supports.
func (f *flags) format(allowed ...string) (string, error) {
	v, ok := f.set["format"]
	if !ok {
		return allowed[0], nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", usagef("invalid value %q for option --format: unknown format %q", v, v)
}

// Main runs the tool named by argv[0] against the state in $FAKE_JUJU_STATE and returns the
// exit status.
func Main(argv []string, stdout, stderr io.Writer) int {
	return mainWith(argv, os.Stdin, stdout, stderr)
}

func mainWith(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	tool := filepath.Base(argv[0])
	path := os.Getenv("FAKE_JUJU_STATE")
	if path == "" {
		fmt.Fprintln(stderr, "ERROR FAKE_JUJU_STATE is not set")
		return 1
	}
	// The unit agent serves hook tools concurrently (the charm asks for all relation IDs at
	// once): each tool's read-modify-write of the state is one critical section.
	unlock, err := lockState(path)
	if err != nil {
		fmt.Fprintln(stderr, "ERROR", err)
		return 1
	}
	defer unlock()
	st, err := Load(path)
	if err != nil {
		fmt.Fprintln(stderr, "ERROR", err)
		return 1
	}
	st.Calls = append(st.Calls, strings.Join(append([]string{tool}, argv[1:]...), " "))
	err = runTool(st, tool, argv[1:], stdin, stdout)
	if serr := st.Save(path); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		fmt.Fprintln(stderr, "ERROR", err)
		if _, ok := err.(*usageError); ok {
			return 2
		}
		return 1
	}
	return 0
}

// lockState takes an exclusive flock beside the state file until unlock.
func lockState(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fake juju state lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("fake juju state lock: %w", err)
	}
	return func() { f.Close() }, nil
}

var formats = []string{"smart", "json", "yaml"}

func runTool(st *State, tool string, args []string, stdin io.Reader, out io.Writer) error {
	if contains(RelationTools, tool) {
		return runRelationTool(st, tool, args, out, stdin)
	}
	if contains(OwnedSecretTools, tool) {
		return runOwnedSecretTool(st, tool, args, out)
	}
	inAction := os.Getenv("JUJU_ACTION_NAME") != "" && st.Action != nil
	switch tool {
	case "config-get":
		f, fm, err := parseFormatted(args, []string{"all", "a"}, map[string]string{"format": "format"}, 1)
		if err != nil {
			return err
		}
		if len(f.posArgs) == 1 && f.posArgs[0] != "" && (f.on("all") || f.on("a")) {
			return usagef("cannot use argument --all together with key %q", f.posArgs[0])
		}
		all := map[string]any{}
		for k, v := range st.ConfigDefaults {
			all[k] = v
		}
		for k, v := range st.Config {
			all[k] = v
		}
		if len(f.posArgs) == 1 {
			// An unknown key prints null, it is not an error (spec/juju.md §1.5).
			return emit(out, fm, all[f.posArgs[0]])
		}
		if f.on("all") || f.on("a") {
			for _, k := range st.ConfigOptions {
				if _, ok := all[k]; !ok {
					all[k] = nil
				}
			}
		}
		return emit(out, fm, all)

	case "status-set":
		f, err := parse(args, []string{"application"}, nil)
		if err != nil {
			return err
		}
		if len(f.posArgs) < 1 {
			return usagef("invalid args, require <status> [message] [data]")
		}
		s := f.posArgs[0]
		switch s {
		case "maintenance", "blocked", "waiting", "active":
		default:
			return usagef("invalid status %q, expected one of [maintenance blocked waiting active]", s)
		}
		// Juju takes one message argument (status-set.go: cmd.CheckEmpty(args[2:])).
		if err := f.atMost(2); err != nil {
			return err
		}
		msg := ""
		if len(f.posArgs) == 2 {
			msg = f.posArgs[1]
		}
		if f.on("application") {
			if !st.Leader {
				return fmt.Errorf("setting application status: this unit is not the leader")
			}
			st.AppStatus = Status{s, msg}
			return nil
		}
		st.UnitStatus = Status{s, msg}
		st.StatusHistory = append(st.StatusHistory, st.UnitStatus)
		return nil

	case "status-get":
		f, err := parse(args, []string{"include-data", "application"}, map[string]string{"format": "format"})
		if err != nil {
			return err
		}
		fm, err := f.format(formats...)
		if err != nil {
			return err
		}
		s := st.UnitStatus
		if f.on("application") {
			if !st.Leader {
				return fmt.Errorf("finding application status: this unit is not the leader")
			}
			s = st.AppStatus
		}
		if f.on("include-data") {
			return emit(out, fm, map[string]any{"status": s.Status, "message": s.Message, "status-data": map[string]any{}})
		}
		return emit(out, fm, s.Status)

	case "action-get":
		if !inAction {
			return fmt.Errorf("not running an action")
		}
		f, fm, err := parseFormatted(args, nil, map[string]string{"format": "format"}, 1)
		if err != nil {
			return err
		}
		var v any = st.Action.Params
		if len(f.posArgs) == 1 {
			for _, k := range strings.Split(f.posArgs[0], ".") {
				m, _ := v.(map[string]any)
				v = m[k]
			}
		}
		return emit(out, fm, v)

	case "action-set":
		if !inAction {
			return fmt.Errorf("not running an action")
		}
		// No pairs is not an error in Juju (action-set.go Init loops over nothing).
		for _, a := range args {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return usagef("argument %q must be of the form key...=value", a)
			}
			if err := checkResultKey(k); err != nil {
				return err
			}
			setDotted(st.Action.Results, strings.Split(k, "."), v)
		}
		return nil

	case "action-fail":
		if !inAction {
			return fmt.Errorf("not running an action")
		}
		f, err := parse(args, nil, nil)
		if err != nil {
			return err
		}
		if err := f.atMost(1); err != nil {
			return err
		}
		st.Action.Failed = true
		st.Action.Message = "action failed without reason given, check action for errors"
		if len(f.posArgs) == 1 {
			st.Action.Message = f.posArgs[0]
		}
		return nil

	case "action-log":
		if !inAction {
			return fmt.Errorf("not running an action")
		}
		f, err := parse(args, nil, nil)
		if err != nil {
			return err
		}
		if len(f.posArgs) == 0 {
			return usagef("no message specified")
		}
		st.Action.Logs = append(st.Action.Logs, strings.Join(f.posArgs, " "))
		return nil

	case "juju-log":
		f, err := parse(args, []string{"debug"}, map[string]string{"log-level": "log-level", "l": "log-level"})
		if err != nil {
			return err
		}
		if len(f.posArgs) == 0 {
			return usagef("no message specified")
		}
		lvl := strings.ToUpper(f.set["log-level"])
		if f.on("debug") {
			lvl = "DEBUG"
		}
		switch lvl {
		case "TRACE", "DEBUG", "INFO", "WARNING", "ERROR":
		case "":
			lvl = "INFO"
		default:
			// Juju logs an invalid level at INFO with a warning rather than failing.
			st.Logs = append(st.Logs, LogLine{"WARNING", fmt.Sprintf("invalid log level %q; using INFO", lvl)})
			lvl = "INFO"
		}
		st.Logs = append(st.Logs, LogLine{lvl, strings.Join(f.posArgs, " ")})
		return nil

	case "is-leader":
		f, err := parse(args, nil, map[string]string{"format": "format"})
		if err != nil {
			return err
		}
		fm, err := f.format(formats...)
		if err != nil {
			return err
		}
		return emit(out, fm, st.Leader)

	case "open-port", "close-port":
		f, err := parse(args, nil, map[string]string{"endpoints": "endpoints"})
		if err != nil {
			return err
		}
		if len(f.posArgs) != 1 {
			return usagef("invalid arguments, expected <port>[/<protocol>] or <from>-<to>[/<protocol>] or icmp")
		}
		p, err := normalizePort(f.posArgs[0])
		if err != nil {
			return err
		}
		op := "+"
		if tool == "close-port" {
			op = "-"
		}
		st.PendingPorts = append(st.PendingPorts, op+p)
		return nil

	case "opened-ports":
		f, err := parse(args, []string{"endpoints"}, map[string]string{"format": "format"})
		if err != nil {
			return err
		}
		fm, err := f.format(formats...)
		if err != nil {
			return err
		}
		ports := append([]string{}, st.OpenedPorts...)
		sort.Strings(ports)
		return emit(out, fm, ports)

	case "application-version-set":
		f, err := parse(args, nil, nil)
		if err != nil {
			return err
		}
		if len(f.posArgs) < 1 {
			return usagef("no version specified")
		}
		if err := f.atMost(1); err != nil {
			return err
		}
		st.AppVersion = f.posArgs[0]
		return nil

	case "secret-get":
		f, err := parse(args, []string{"peek", "refresh"}, map[string]string{"format": "format", "label": "label"})
		if err != nil {
			return err
		}
		fm, err := f.format("yaml", "json") // secret-get has no smart format
		if err != nil {
			return err
		}
		if f.on("peek") && f.on("refresh") {
			return usagef("specify one of --peek or --refresh but not both")
		}
		var id string
		key := ""
		if label := f.set["label"]; label != "" && (len(f.posArgs) == 0 || len(f.posArgs) == 1) && !strings.HasPrefix(firstArg(f.posArgs), "secret:") {
			// By the owner's label alone (Juju: "secret-get --label L [key]").
			var found bool
			if id, found = st.SecretLabels[label]; !found {
				return fmt.Errorf("secret %q not found", label)
			}
			key = firstArg(f.posArgs)
		} else {
			if len(f.posArgs) < 1 || len(f.posArgs) > 2 {
				return usagef("require a secret URI and optionally a key")
			}
			var ok bool
			if id, ok = parseSecretURI(f.posArgs[0]); !ok {
				return usagef("secret URI %q not valid", f.posArgs[0])
			}
			if len(f.posArgs) == 2 {
				key = f.posArgs[1]
			}
		}
		if _, found := st.Secrets[id]; !found {
			return fmt.Errorf("secret %q not found", id)
		}
		if !st.Granted[id] {
			return fmt.Errorf("permission denied")
		}
		content := st.secretRevision(id, f.on("peek"), f.on("refresh"))
		if _, owned := st.Owned[id]; owned {
			content = st.Secrets[id] // the owner always reads its latest revision
		}
		if key != "" {
			v, ok := content[key]
			if !ok {
				return fmt.Errorf("secret key %q not found", key)
			}
			return emit(out, fm, v)
		}
		return emit(out, fm, content)
	}
	return fmt.Errorf("fakejuju: unknown tool %q", tool)
}

func firstArg(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

// secretRevision returns the content a consumer sees: the tracked revision (pinned to the
// latest on first read), the latest with --refresh (which moves the pin) or --peek (which does
// not).
func (st *State) secretRevision(id string, peek, refresh bool) map[string]string {
	revs := st.SecretRevisions[id]
	if len(revs) == 0 {
		revs = []map[string]string{st.Secrets[id]}
	}
	latest := len(revs)
	if st.Tracked == nil {
		st.Tracked = map[string]int{}
	}
	rev, pinned := st.Tracked[id]
	switch {
	case peek:
		return revs[latest-1]
	case refresh || !pinned || rev < 1 || rev > latest:
		st.Tracked[id] = latest
		return revs[latest-1]
	}
	return revs[rev-1]
}

var (
	resultKeyRe  = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$`)
	reservedKeys = map[string]bool{"stdout": true, "stdout-encoding": true, "stderr": true, "stderr-encoding": true}
	portRe       = regexp.MustCompile(`^([0-9]+)(?:-([0-9]+))?(?:/(tcp|udp))?$`)
	secretIDRe   = regexp.MustCompile(`^[0-9a-v]{20}$`)
)

// checkResultKey applies action-set's rules (juju's jujuc action-set).
func checkResultKey(k string) error {
	for _, seg := range strings.Split(k, ".") {
		if !resultKeyRe.MatchString(seg) {
			return usagef("key %q must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric and hyphens", seg)
		}
		// Juju checks every segment against the reserved keys, not just the whole key.
		if reservedKeys[seg] {
			return usagef("cannot set reserved action key %q", seg)
		}
	}
	return nil
}

func setDotted(m map[string]any, path []string, v string) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// normalizePort checks a port spec; Kubernetes models do not support ranges.
func normalizePort(s string) (string, error) {
	if s == "icmp" {
		return s, nil
	}
	m := portRe.FindStringSubmatch(s)
	if m == nil {
		return "", usagef("invalid port %q: expected <port>[/<protocol>]", s)
	}
	n, _ := strconv.Atoi(m[1])
	if n < 1 || n > 65535 {
		return "", fmt.Errorf("port must be in the range [1, 65535]; got %q", m[1])
	}
	if m[2] != "" {
		return "", fmt.Errorf("port ranges are not supported on Kubernetes models: %q", s)
	}
	proto := m[3]
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%d/%s", n, proto), nil
}

// parseSecretURI accepts what Juju's secrets.ParseURI does: "secret:ID", "secret://UUID/ID"
// or a bare ID, where ID is a 20-character xid.
func parseSecretURI(uri string) (string, bool) {
	s := strings.TrimPrefix(uri, "secret:")
	if strings.HasPrefix(s, "//") {
		_, rest, ok := strings.Cut(s[2:], "/")
		if !ok {
			return "", false
		}
		s = rest
	}
	if !secretIDRe.MatchString(s) {
		return "", false
	}
	return s, true
}

// emit prints v in a Juju output format: json, yaml, or smart (strings raw, booleans
// True/False, the rest YAML).
func emit(out io.Writer, format string, v any) error {
	switch format {
	case "json":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, string(b))
		return err
	case "smart":
		switch t := v.(type) {
		case string:
			_, err := fmt.Fprintln(out, t)
			return err
		case bool:
			s := "False"
			if t {
				s = "True"
			}
			_, err := fmt.Fprintln(out, s)
			return err
		case nil:
			return nil
		}
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}
