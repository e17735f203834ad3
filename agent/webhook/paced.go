package webhook

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// slowBodyError is a body that did not arrive in time: past its deadline, or too slowly.
type slowBodyError struct {
	got     int64
	elapsed time.Duration
	why     string
}

func (e *slowBodyError) Error() string {
	return fmt.Sprintf("request body too slow: %d bytes in %s (%s)", e.got, e.elapsed.Round(time.Millisecond), e.why)
}

// pacedBody enforces the body rules with read deadlines on the connection, so a client that
// sends nothing at all is cut off as surely as one that trickles: the whole body within
// timeout, and after grace at least rate bytes per second on average. The deadline is moved
// before every read to the moment the rule would be broken with the bytes received so far.
type pacedBody struct {
	r       io.ReadCloser
	rc      *http.ResponseController
	start   time.Time
	timeout time.Duration
	grace   time.Duration
	rate    int64
	n       int64
	set     time.Time
	noDL    bool
}

func newPacedBody(r io.ReadCloser, rc *http.ResponseController, timeout, grace time.Duration, rate int64) *pacedBody {
	return &pacedBody{r: r, rc: rc, start: time.Now(), timeout: timeout, grace: grace, rate: rate}
}

// deadline is when the body rules are broken if no more bytes arrive.
func (p *pacedBody) deadline() (time.Time, string) {
	var dl time.Time
	why := ""
	if p.timeout > 0 {
		dl, why = p.start.Add(p.timeout), fmt.Sprintf("webhook.body_timeout is %s", p.timeout)
	}
	if p.rate > 0 {
		paced := p.start.Add(p.grace + time.Duration(float64(p.n)/float64(p.rate)*float64(time.Second)))
		if dl.IsZero() || paced.Before(dl) {
			dl, why = paced, fmt.Sprintf("webhook.min_body_rate is %d bytes/s after webhook.body_grace %s", p.rate, p.grace)
		}
	}
	return dl, why
}

func (p *pacedBody) Read(b []byte) (int, error) {
	dl, why := p.deadline()
	if !p.noDL && !dl.Equal(p.set) {
		if err := p.rc.SetReadDeadline(dl); err != nil {
			p.noDL = true // not a plain connection (tests): the server's read_timeout still applies
		}
		p.set = dl
	}
	if p.noDL && !dl.IsZero() && time.Now().After(dl) {
		return 0, &slowBodyError{got: p.n, elapsed: time.Since(p.start), why: why}
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, &slowBodyError{got: p.n, elapsed: time.Since(p.start), why: why}
	}
	return n, err
}

func (p *pacedBody) Close() error { return p.r.Close() }

// done clears the read deadline once the body is in, so it cannot cut the connection's next
// request short (the server sets its own deadlines for that one when it has any).
func (p *pacedBody) done() {
	if !p.noDL && !p.set.IsZero() {
		_ = p.rc.SetReadDeadline(time.Time{})
	}
}
