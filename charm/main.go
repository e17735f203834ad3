package charm

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Handler runs one hook or action.
type Handler func(ctx context.Context, c *Context, name string) error

// hookTimeout bounds a hook: Juju runs one hook at a time per unit, so a stuck hook would block
// the unit for ever.
const hookTimeout = 5 * time.Minute

// Main runs the charm for this process (Juju's dispatch) and returns the exit status. A
// non-zero status makes Juju mark the hook failed (and retry it) or the action failed.
func Main(version string, hooks, actions Handler) int {
	env := ReadEnv(os.Args[0])
	c := NewContext(env, ExecTools{}, version, os.Stdout)
	ctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
	defer cancel()
	flushLog := c.asyncJujuLog()
	defer flushLog() // before exit: Juju must have every line when it sees the hook end
	var err error
	switch env.Kind {
	case "hooks":
		err = hooks(ctx, c, env.Name)
	case "actions":
		err = actions(ctx, c, env.Name)
	default:
		err = fmt.Errorf("unknown dispatch path kind %q (JUJU_DISPATCH_PATH=%q)", env.Kind, os.Getenv("JUJU_DISPATCH_PATH"))
	}
	if err == nil {
		// Only a successful hook's calls are known to Juju (open-port is committed at exit 0);
		// a record that cannot be written just costs the next hook the calls again.
		if rerr := c.saveJujuRecord(); rerr != nil {
			c.Log.Debug().Err(rerr).Msg("juju record not saved")
		}
	}
	if err != nil {
		c.Log.Error().Err(err).Msg("failed")
		fmt.Fprintln(os.Stderr, c.Redact(err.Error()))
		return 1
	}
	return 0
}
